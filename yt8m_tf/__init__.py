"""yt8m-tf: YouTube-8M video classification on TensorFlow 2 / Keras 3.

The package follows the paper's decomposition (Na et al., 2017): readers -> pooling g -> classifier h ->
label processing C -> loss L -> metrics / Kaggle CSV.
"""

__version__ = "0.1.0"
