"""Datasets, on-device augmentation and batching for jaxlocal."""

from jaxlocal.data.augment import Augment, preprocess
from jaxlocal.data.errors import DatasetFormatError, DatasetNotFoundError
from jaxlocal.data.pipeline import batch_indices, epoch_permutation, eval_batches, steps_per_epoch
from jaxlocal.data.registry import DATASETS, DatasetInfo, dataset_info
from jaxlocal.data.sources import Dataset, load_dataset

__all__ = [
    'Augment',
    'DATASETS',
    'Dataset',
    'DatasetFormatError',
    'DatasetInfo',
    'DatasetNotFoundError',
    'batch_indices',
    'dataset_info',
    'epoch_permutation',
    'eval_batches',
    'load_dataset',
    'preprocess',
    'steps_per_epoch',
]
