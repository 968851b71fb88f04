"""Distillation: latent-matching losses, the teacher-feature cache and the training loop."""
