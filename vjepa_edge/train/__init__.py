"""Training infrastructure shared by teacher pretraining and distillation: torchrun process groups, atomic
resumable checkpoints, metrics logging and the progress bar. Imports torch only."""
