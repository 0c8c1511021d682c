"""Fitting and scoring classifiers: heads, Keras training, fine-tuning, the scratch CNN, CV, the saved model."""
