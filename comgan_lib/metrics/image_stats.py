"""Low-level statistics of a set of images, to compare generated images with real ones.

Stage 2 teaches S on generated images and judges it on real ones; where the generator's images
are paler or blurrier than the real ones, S meets inputs it never saw. Three numbers per set
(images in [-1, 1], [N, 3, H, W]), each a mean over images:

- ``contrast``: each image's per-channel pixel deviation;
- ``colour_spread``: per pixel, max − min over the channels (0 for grey);
- ``detail``: mean |Laplacian| (3×3, per channel), the fine texture and edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


@torch.no_grad()
def image_statistics(images: torch.Tensor) -> dict[str, float]:
    x = images.float()
    kernel = _LAPLACIAN.to(x.device).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    return {
        "contrast": float(x.std(dim=(-2, -1), unbiased=False).mean()),
        "colour_spread": float((x.amax(dim=1) - x.amin(dim=1)).mean()),
        "detail": float(F.conv2d(x, kernel, groups=x.shape[1]).abs().mean()),
    }
