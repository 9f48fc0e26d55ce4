"""Datasets, on-device augmentation and batching for jaxlocal."""

from jaxlocal.data.augment import Augment, preprocess
from jaxlocal.data.errors import DatasetFormatError, DatasetNotFoundError
from jaxlocal.data.pipeline import (BatchOrder, batch_indices, class_limited_permutation,
                                    epoch_permutation, eval_batches, steps_per_epoch)
from jaxlocal.data.registry import DATASETS, DatasetInfo, dataset_info
from jaxlocal.data.sources import Dataset, load_dataset

__all__ = [
    'Augment',
    'BatchOrder',
    'DATASETS',
    'Dataset',
    'DatasetFormatError',
    'DatasetInfo',
    'DatasetNotFoundError',
    'batch_indices',
    'class_limited_permutation',
    'dataset_info',
    'epoch_permutation',
    'eval_batches',
    'load_dataset',
    'preprocess',
    'steps_per_epoch',
]
