"""R-Net training, kept apart from the network (:mod:`facerecon.nets.rnet`): the paper's
self-supervised hybrid loss, distillation from fitter labels and synthetic faces with known
parameters, mixed by weight; AdamW with warm-up and cosine decay, mixed precision on CUDA,
DistributedDataParallel under ``torchrun``, atomic checkpoints resumed automatically,
TensorBoard and held-out-people validation. The command line is ``facerecon train``.
"""

from facerecon.training.config import LabelWeights, TrainConfig
from facerecon.training.objectives import LabelTerms, Objectives, label_loss
from facerecon.training.trainer import Trainer

__all__ = ["LabelTerms", "LabelWeights", "Objectives", "TrainConfig", "Trainer", "label_loss"]
