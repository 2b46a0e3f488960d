"""Networks: GLU blocks, the SimpleGAN feature generator, the generators compared in the paper
(SimpleGAN, Π1, Π2, ComGAN), and the image discriminator. ``build_generator`` picks one by name."""

from comgan_lib.nets.discriminators import ImageDiscriminator
from comgan_lib.nets.generators import (
    GENERATORS,
    ComGAN,
    FeatureGenerator,
    Pi1,
    Pi2,
    SimpleGAN,
    build_generator,
)

__all__ = [
    "GENERATORS",
    "ComGAN",
    "FeatureGenerator",
    "ImageDiscriminator",
    "Pi1",
    "Pi2",
    "SimpleGAN",
    "build_generator",
]
