"""Networks: GLU blocks, the SimpleGAN feature generator, the generators compared in the paper
(SimpleGAN, Π1, Π2, ComGAN, ComGAN + codes, DS-ComGAN), and the image discriminator.
``build_generator`` picks one by name."""

from comgan_lib.nets.discriminators import ImageDiscriminator
from comgan_lib.nets.generators import (
    GENERATORS,
    ComGAN,
    ComGANInfo,
    DSComGAN,
    FeatureGenerator,
    Pi1,
    Pi2,
    SimpleGAN,
    build_generator,
)

__all__ = [
    "GENERATORS",
    "ComGAN",
    "ComGANInfo",
    "DSComGAN",
    "FeatureGenerator",
    "ImageDiscriminator",
    "Pi1",
    "Pi2",
    "SimpleGAN",
    "build_generator",
]
