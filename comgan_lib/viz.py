"""Figure helpers with one consistent style: image grids, mask overlays, histograms.

Images are tensors in [-1, 1] ([N,3,H,W]); masks are in [0, 1] ([N,1,H,W]). Every helper returns
a matplotlib Figure so a notebook can show it and ``RunDir.save_figure`` can write it (PNG and
PDF, stamped with the run and the model by ``stamp``).

One style for every figure: ``STYLE`` is applied on import; ``paper_style()`` is a context for
figures meant to be printed at the paper's size (``PAPER_WIDTH_IN`` wide, text at 7-9 pt), and
``fit_to_paper(fig)`` shrinks a finished figure to that width so its text stays readable there::

    with viz.paper_style():
        fig = viz.grid_rows(rows, labels, title=viz.figure_title("Fig. 5 rows", model="ComGAN β=1"))
    run.save_figure(fig, "02_fig5_rows", model="ComGAN β=1")
"""

from __future__ import annotations

import contextlib

import matplotlib

# Applied to every figure of the workbook.
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays text, editable and searchable
}
# Text width of the NeurIPS page the paper is printed on, and text sizes readable at that width.
PAPER_WIDTH_IN = 5.5
PAPER_STYLE = {
    **STYLE,
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "lines.linewidth": 1.2,
    "savefig.dpi": 300,
}
STAMP_GID = "comgan-stamp"

matplotlib.rcParams.update(STYLE)

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


def paper_style():
    """A context in which new figures use the paper-size style (``PAPER_STYLE``)."""
    return matplotlib.rc_context(PAPER_STYLE)


def figure_title(text: str, model: str | None = None, run: str | None = None) -> str:
    """A figure title naming what it shows, the model and the run: "Fig. 5 rows — ComGAN (run
    synthetic)"."""
    parts = [text]
    if model:
        parts.append(f"— {model}")
    if run:
        parts.append(f"(run {run})")
    return " ".join(parts)


def stamp(fig, run: str | None = None, model: str | None = None):
    """Label a figure with its run and model in small grey text under it; calling it again
    replaces the label. Returns the figure."""
    for text in [t for t in fig.texts if t.get_gid() == STAMP_GID]:
        text.remove()
    label = " · ".join(p for p in (f"run {run}" if run else "", model or "") if p)
    if label:
        fig.text(0.995, 0.0, label, ha="right", va="top", fontsize=6, color="0.45", gid=STAMP_GID)
    return fig


def fit_to_paper(fig, width_in: float = PAPER_WIDTH_IN):
    """Shrink a figure wider than the paper's text width to that width (aspect kept), so that
    its text, set in points, is printed at its nominal size. Returns the figure."""
    w, h = fig.get_size_inches()
    if w > width_in:
        fig.set_size_inches(width_in, h * width_in / w)
        with contextlib.suppress(Exception):  # layouts that cannot shrink further keep theirs
            fig.tight_layout()
    return fig


def to_display(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images or [0, 1] masks ([N,C,H,W], C in {1, 3}) to [0, 1] RGB."""
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        return images.clamp(0, 1).expand(-1, 3, -1, -1)
    return ((images + 1) / 2).clamp(0, 1)


def grid_rows(
    rows: list[torch.Tensor],
    labels: list[str],
    title: str | None = None,
    pad: int = 1,
    pad_value: float = 0.5,
):
    """One figure: each entry of ``rows`` is a batch shown as one labelled row of tiles."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.1 * rows[0].shape[0], 1.25 * len(rows)))
    axes = [axes] if len(rows) == 1 else list(axes)
    for ax, batch, label in zip(axes, rows, labels, strict=True):
        grid = make_grid(to_display(batch), nrow=batch.shape[0], padding=pad, pad_value=pad_value)
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def overlay(images: torch.Tensor, masks: torch.Tensor, colour=(1.0, 0.2, 0.2), alpha=0.5):
    """Images with the mask's foreground tinted: [N,3,H,W] in [0, 1]."""
    rgb = to_display(images)
    tint = torch.tensor(colour).view(1, 3, 1, 1)
    m = masks.detach().float().cpu().clamp(0, 1)
    return rgb * (1 - alpha * m) + tint * alpha * m


def histogram(values: dict[str, torch.Tensor], xlabel: str, bins: int = 30, title: str = ""):
    """Overlaid normalised histograms, one per named sample."""
    fig, ax = plt.subplots(figsize=(5, 3))
    lo = min(float(v.min()) for v in values.values())
    hi = max(float(v.max()) for v in values.values())
    for name, v in values.items():
        ax.hist(v.numpy(), bins=bins, range=(lo, hi), density=True, alpha=0.55, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def count_matrix(counts: torch.Tensor, row_labels, col_labels, title: str = ""):
    """A heat map of a 2-D count table with the counts written in the cells."""
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(col_labels), 0.8 + 0.5 * len(row_labels)))
    ax.imshow(counts.numpy(), cmap="Blues")
    for (i, j), value in zip(
        torch.cartesian_prod(*map(torch.arange, counts.shape)).tolist(),
        counts.flatten().tolist(),
        strict=True,
    ):
        ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
