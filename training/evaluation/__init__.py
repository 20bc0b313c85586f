"""How good a model is: metrics, the evaluation report, plots and the model card.

Pure functions of outcomes and predictions; nothing here touches MLflow (the
registry logs what this package computes).
"""
