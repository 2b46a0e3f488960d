"""Orientation: which of the generator's layers is the object, M or 1 − M (Sec. 3.3, Eq. 6, 9, 10).

The composite of Eq. 6 (Eq. 2 for ComGAN) is ``x̄ = F ⊙ M + B ⊙ (1 − M)``; stage 2 (Sec. 3.3)
takes ``x̄_m`` as the *foreground* mask in Eq. 9 and 10. Nothing in stage 1 says which layer M
selects: on the embedded dataset M often ends up on the background layer. This module decides it
once per generator, without labels, and turns the generator's mask into the foreground mask:

- ``orient_generator``: the border rule (the layer that covers more of a 2-pixel image-border ring,
  averaged over samples, is the background); returns a record that travels with the segmenter.
- ``given_orientation``: a record for an orientation chosen by hand.
- ``orientation_warning``: what to tell a reader when the rule is unsure or the samples disagree.
- ``foreground_mask``: M itself or ``1 − M`` for an orientation.
- ``border_ring``, ``generator_latents``: the ring of border pixels, and a generator's inputs.

It sits below both stage 2 (``comgan_lib.stage2``) and the oracle (``comgan_lib.oracle``, which
checks the rule against ground truth with ``compare_with_oracle``) and imports neither.
"""

from __future__ import annotations

import torch

from comgan_lib.errors import UserError

BORDER_PX = 2
ORIENTATIONS = ("mask", "inverse")
CONFIDENT_MARGIN = 0.1
# The share of samples whose own ring vote must agree with the decision. On the 18 generators of
# docs/FINDINGS.md (2026-12-07, third session) every one below 0.85 drew masks of oracle IoU 0.54 or
# less (M on the object in some samples, on the scene in others), and all but one above it drew
# 0.6 or more; the margin alone passed half of the failures.
CONFIDENT_AGREEMENT = 0.85


def border_ring(height: int, width: int, border: int = BORDER_PX) -> torch.Tensor:
    """Boolean [H, W]: the pixels within ``border`` of the image edge."""
    if border < 1 or 2 * border >= min(height, width):
        raise ValueError(f"border must be in 1..{min(height, width) // 2 - 1}, got {border}")
    ring = torch.ones(height, width, dtype=torch.bool)
    ring[border : height - border, border : width - border] = False
    return ring


def orient_per_image(masks: torch.Tensor, border: int = BORDER_PX) -> torch.Tensor:
    """``masks`` [N,1,H,W] with every mask that covers more than half of its ``border``-pixel ring
    (at 0.5) replaced by its complement: the border rule applied to each image on its own, for
    data whose object lies inside the frame (stage 2b's targets, ``comgan_lib.self_train``)."""
    ring = border_ring(*masks.shape[-2:], border).to(masks.device)
    on_ring = (masks[..., ring] >= 0.5).float().mean(dim=(-1, -2))
    flip = (on_ring > 0.5).view(-1, *([1] * (masks.dim() - 1)))
    return torch.where(flip, 1 - masks, masks)


def generator_latents(G, n: int, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
    """Every input of ``G.forward`` for ``n`` samples (z, and the codes f, b of coded models)."""
    if hasattr(G, "sample_latents"):
        return G.sample_latents(n, generator=generator, device=device)
    return {"z": G.sample_z(n, generator=generator, device=device)}


@torch.no_grad()
def orient_generator(
    G, n: int = 512, seed: int = 0, border: int = BORDER_PX, batch_size: int = 128
) -> dict:
    """Decide once, without labels, whether ``G``'s mask M is the foreground or the background.

    Rule: the layer that covers more of the image border (a ``border``-pixel ring, averaged over
    ``n`` samples) is the background. M covers the ring by ``border_mask_mean`` and the other layer
    by ``1 − border_mask_mean``; if M covers more, M is the background and the foreground mask is
    ``1 − M`` ("inverse"), otherwise M is the foreground ("mask"; a tie counts as "mask").

    Returns ``{"orientation", "border_mask_mean", "border_inverse_mean", "centre_mask_mean",
    "mask_mean", "frac_samples_agree", "margin", "n_samples", "seed", "border_px", "source"}``:
    ``frac_samples_agree`` is the share of samples whose own ring vote agrees with the decision,
    ``margin`` is ``|border_mask_mean − 0.5|`` (0: undecided, 0.5: unanimous and hard) and
    ``confident`` says ``margin >= 0.1`` and ``frac_samples_agree >= 0.85`` (otherwise
    ``orientation_warning`` says what is wrong).
    """
    first = next(G.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    # All latents at once, so the decision does not depend on the batch size.
    latents = generator_latents(G, n, torch.Generator().manual_seed(seed), "cpu")
    ring_sums, centre_sums, totals = [], [], []
    ring = centre = None
    for start in range(0, n, batch_size):
        chunk = {k: v[start : start + batch_size].to(device) for k, v in latents.items()}
        m = G(**chunk)["mask"].float().cpu()
        if ring is None:
            h, w = m.shape[-2:]
            ring = border_ring(h, w, border)
            centre = torch.zeros(h, w, dtype=torch.bool)
            centre[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
        m = m.reshape(m.shape[0], *m.shape[-2:])
        ring_sums.append(m[:, ring].mean(1))
        centre_sums.append(m[:, centre].mean(1))
        totals.append(m.flatten(1).mean(1))
    per_sample = torch.cat(ring_sums)
    border_mean = float(per_sample.mean())
    inverse = border_mean > 0.5
    votes = per_sample > 0.5 if inverse else per_sample <= 0.5
    agree = float(votes.float().mean())
    return {
        "orientation": "inverse" if inverse else "mask",
        "border_mask_mean": border_mean,
        "border_inverse_mean": 1.0 - border_mean,
        "centre_mask_mean": float(torch.cat(centre_sums).mean()),
        "mask_mean": float(torch.cat(totals).mean()),
        "frac_samples_agree": agree,
        "margin": abs(border_mean - 0.5),
        "confident": abs(border_mean - 0.5) >= CONFIDENT_MARGIN and agree >= CONFIDENT_AGREEMENT,
        "n_samples": n,
        "seed": seed,
        "border_px": border,
        "source": "border rule",
    }


def given_orientation(orientation: str) -> dict:
    """An orientation record for an orientation chosen by hand (not measured)."""
    if orientation not in ORIENTATIONS:
        raise UserError(
            f"orientation must be one of {', '.join(ORIENTATIONS)}; got {orientation!r}"
        )
    return {"orientation": orientation, "source": "given"}


def orientation_warning(record: dict) -> str | None:
    """A sentence for the reader when ``orient_generator``'s record is not confident, else None.

    Records chosen by hand (``given_orientation``) carry no measurement and get no warning.
    """
    if "frac_samples_agree" not in record or record.get("confident", True):
        return None
    agree, margin = record["frac_samples_agree"], record["margin"]
    if agree < CONFIDENT_AGREEMENT:
        return (
            f"the generator's orientation is mixed: only {agree:.0%} of samples put the same layer "
            "on the border, so M is the object in some samples and the scene in others; stage 2 "
            "will learn masks inverted on the rest. Check the masks (notebook 02 or 03) and, if "
            "they swap, train stage 1 again with another run.seed."
        )
    return (
        f"the border rule is unsure (border coverage {record['border_mask_mean']:.2f}, margin "
        f"{margin:.2f} < {CONFIDENT_MARGIN}): both layers touch the border about equally. Check "
        "the masks, or set the orientation by hand (train_segmenter(..., orientation=...))."
    )


def foreground_mask(mask: torch.Tensor, orientation: str) -> torch.Tensor:
    """The generator's mask oriented to the foreground: M itself, or ``1 − M``."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return 1 - mask if orientation == "inverse" else mask
