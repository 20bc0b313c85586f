"""The only code that talks to MLflow: tracked runs, the pyfunc adapter, the
registration and promotion gates, external validation and run comparison.

``serving/import_model.py`` is the one other module that imports MLflow: it hands a
registered model to the BentoML store.
"""
