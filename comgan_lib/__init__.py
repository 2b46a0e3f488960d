"""ComGAN workbook library: parameters, data, networks, training, metrics and figures.

Notebooks in ``notebooks/`` only call into this package; ``python -m comgan_lib.run`` executes them.
"""

__version__ = "0.1.0"
