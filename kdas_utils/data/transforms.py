"""Augmentation and evaluation pipelines, built with albumentations.

albumentations applies one random draw of every geometric transform to the image *and*
the mask (masks with nearest-neighbour interpolation, so they stay binary), and applies
colour transforms to the image only. That is what keeps image and mask aligned;
``tests/test_transforms.py`` proves it on a real pair.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def geometric_transforms() -> list:
    """Flips, right-angle and free rotations, scale and shift: what moves pixels."""
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.Affine(
            scale=(0.8, 1.2),
            translate_percent=(-0.08, 0.08),
            rotate=(-30, 30),
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
            p=0.7,
        ),
    ]


def photometric_transforms() -> list:
    """Colour jitter and blur: what changes pixel values, never their place."""
    return [
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.03, p=0.7),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))], p=0.3),
    ]


def to_model_input() -> list:
    """ImageNet normalisation (the backbones were pre-trained with it) and HWC -> CHW tensor."""
    return [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()]


def train_transforms(image_size: int, augment: bool = True, **compose_kwargs) -> A.Compose:
    """Training pipeline: resize to ``image_size``, augment, normalise, to tensor.

    Resizing first makes every later transform work on the small image (cheaper).
    ``augment=False`` gives the released KDAS code's effective behaviour (its augmentation
    flag is compared with the string 'True' while the default is the bool True, so it never
    augments). Extra keyword arguments go to :class:`albumentations.Compose`
    (e.g. ``additional_targets``, ``seed``).
    """
    steps = [A.Resize(image_size, image_size)]
    if augment:
        steps += geometric_transforms() + photometric_transforms()
    return A.Compose(steps + to_model_input(), **compose_kwargs)


def eval_transforms(image_size: int, **compose_kwargs) -> A.Compose:
    """Evaluation pipeline: resize to ``image_size``, ImageNet normalisation, to tensor."""
    return A.Compose([A.Resize(image_size, image_size)] + to_model_input(), **compose_kwargs)


def denormalize(image):
    """Undo :func:`to_model_input` on a ``(3, H, W)`` tensor: ``(H, W, 3) uint8`` for display."""
    array = image.detach().cpu().float().numpy().transpose(1, 2, 0)
    array = array * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return np.clip(np.round(array * 255), 0, 255).astype(np.uint8)
