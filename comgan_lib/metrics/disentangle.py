"""Measured disentanglement of a generator with codes (Sec. 3.2, beyond the paper's pictures).

For ``n`` base latents (z, f, b) we change one factor at a time and look at where the image moves:

- only b changes: the share of the image change ``|Δx|`` that falls *outside* the mask M
  (b should act on the background layer only);
- only f changes: the share that falls *inside* M;
- only z changes: the mean change of the mask, against the mask change when only f or only b
  changes (zero by construction in DS-ComGAN, where M reads φ(z) alone — measured anyway).

"Inside the mask" is the layer M composes F with; the orientation (is M the object or the
scene?) is reported separately, because F and B are symmetric in the architecture.

Also: how well the code classifiers Q_f and Q_b recover f and b from fresh samples of F and B,
against chance (1 / N).
"""

from __future__ import annotations

import torch

from comgan_lib.train import generate


def _other_codes(codes: torch.Tensor, num_codes: int, gen: torch.Generator) -> torch.Tensor:
    """A different code for every sample (uniform over the other N − 1)."""
    shift = torch.randint(1, num_codes, codes.shape, generator=gen) if num_codes > 1 else 0
    return (codes + shift) % num_codes


@torch.no_grad()
def leakage(G, n: int = 256, seed: int = 0, batch_size: int = 128) -> dict:
    """Where each factor acts. Returns shares in [0, 1] and mean absolute mask changes."""
    if not getattr(G, "has_codes", False):
        raise ValueError(f"{G.kind} has no codes f and b to vary")
    gen = torch.Generator().manual_seed(seed)
    base = G.sample_latents(n, generator=gen, device="cpu")
    varied = {
        "f": base | {"f": _other_codes(base["f"], G.num_codes, gen)},
        "b": base | {"b": _other_codes(base["b"], G.num_codes, gen)},
        "z": base | {"z": G.sample_z(n, generator=gen, device="cpu")},
    }
    if G.tied_codes:  # f and b move together: only the pair can be varied
        varied["f"]["b"] = varied["f"]["f"]
        varied["b"]["f"] = varied["b"]["b"]
    ref = generate(G, base, batch_size)
    mask = ref["mask"]
    out = {"n_samples": n, "tied_codes": bool(G.tied_codes)}
    for factor, latents in varied.items():
        new = generate(G, latents, batch_size)
        change = (new["image"] - ref["image"]).abs().sum(1, keepdim=True)
        total = change.sum().clamp_min(1e-12)
        out[f"{factor}_share_inside_mask"] = float((change * mask).sum() / total)
        out[f"{factor}_share_outside_mask"] = float((change * (1 - mask)).sum() / total)
        out[f"{factor}_mean_image_change"] = float(change.mean() / 3)
        out[f"{factor}_mean_mask_change"] = float((new["mask"] - mask).abs().mean())
    return out


@torch.no_grad()
def code_recovery(G, Q, n: int = 512, seed: int = 1, batch_size: int = 128) -> dict:
    """Accuracy of Q_f on F and Q_b on B for fresh samples; chance is ``1 / num_codes``."""
    s = generate(G, G.sample_latents(n, generator=torch.Generator().manual_seed(seed)), batch_size)
    result = {"n_samples": n, "chance": 1.0 / G.num_codes}
    for layer, code in (("fg", "f"), ("bg", "b")):
        logits = torch.cat(
            [Q[layer].classify_code(s[layer][i : i + batch_size]) for i in range(0, n, batch_size)]
        )
        result[f"acc_{code}"] = float((logits.argmax(1) == s[code]).float().mean())
    return result
