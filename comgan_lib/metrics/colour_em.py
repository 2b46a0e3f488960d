"""Per-image colour refinement of a soft mask: a GrabCut-like EM without the graph cut.

``colour_em(images, prior)`` treats ``prior`` (foreground probabilities, [N,1,H,W]) as each
pixel's prior and fits, per image, one full-covariance Gaussian to the foreground's colours and one
to the background's, weighted by the current posterior; the posterior is then Bayes' rule,
``logit q = logit prior + log N(x | fg) - log N(x | bg)``, and the two steps repeat
``iterations`` times. No parameter is learnt and nothing is tuned per dataset: the prior enters
once, at weight 1.

It is used twice, for two different questions:

- as a **post-hoc step on S's masks** (``comgan_lib.segment_eval``: "S + colour EM"), where S
  gives the shape and the image's own colours sharpen it (thin parts and hollows that a small S
  draws as rounded blobs);
- as a **training-free predictor** with a soft centred disc as the prior
  (``comgan_lib.metrics.masks.centre_colour_em``): what per-image colour statistics alone reach on
  a dataset, the bar a learnt segmenter has to clear.
"""

from __future__ import annotations

import torch
from torch import Tensor

ITERATIONS = 10
_PRIOR_CLAMP = 1e-4  # a certain prior would never let the colours speak
_LLR_CLAMP = 20.0  # a colour far from both models must not flip a confident prior alone
_RIDGE = 1e-3  # keeps a flat region's covariance invertible


def _log_gaussian(x: Tensor, weight: Tensor) -> Tensor:
    """Log-density (up to a constant) of each pixel under the ``weight``-ed Gaussian of ``x``.

    ``x`` [N,P,C], ``weight`` [N,P] -> [N,P]."""
    total = weight.sum(1, keepdim=True).clamp_min(1e-6)
    mean = (weight.unsqueeze(-1) * x).sum(1, keepdim=True) / total.unsqueeze(-1)
    d = x - mean
    cov = torch.einsum("np,npc,npd->ncd", weight, d, d) / total.unsqueeze(-1)
    cov = cov + _RIDGE * torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    maha = torch.einsum("npc,ncd,npd->np", d, torch.linalg.inv(cov), d)
    return -0.5 * maha - 0.5 * torch.logdet(cov).unsqueeze(1)


def colour_em(images: Tensor, prior: Tensor, iterations: int = ITERATIONS) -> Tensor:
    """Foreground probabilities [N,1,H,W] of ``images`` [N,C,H,W] refined from ``prior``."""
    if images.dim() != 4 or prior.dim() != 4 or prior.shape[1] != 1:
        raise ValueError(
            f"images must be [N,C,H,W] and prior [N,1,H,W], got {tuple(images.shape)} and "
            f"{tuple(prior.shape)}"
        )
    if images.shape[0] != prior.shape[0] or images.shape[-2:] != prior.shape[-2:]:
        raise ValueError(f"prior {tuple(prior.shape)} does not match images {tuple(images.shape)}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    n, c, h, w = images.shape
    x = images.double().flatten(2).transpose(1, 2)  # [N, P, C]
    p = prior.double().flatten(1).clamp(_PRIOR_CLAMP, 1 - _PRIOR_CLAMP)
    prior_logit = torch.logit(p)
    q = p
    for _ in range(iterations):
        llr = _log_gaussian(x, q) - _log_gaussian(x, 1 - q)
        q = torch.sigmoid(prior_logit + llr.clamp(-_LLR_CLAMP, _LLR_CLAMP))
    return q.view(n, 1, h, w).to(images.dtype)
