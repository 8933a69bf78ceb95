"""Predict: customer lifetime value and churn risk from the order history.

Owns the RFM summary the models read (frequency, recency and age in days, mean repeat order
value), fitting the modified BG/NBD purchase model and the Gamma-Gamma spend model
(PyMC-Marketing, maximum a posteriori), the per-customer predictions and the fitted parameters,
and writing both as one Parquet file per snapshot date (``predict/store.py``). dbt reads the files
(``models/predictions``) and derives the churn-risk band there.

May import: config, duck, layout.
"""
