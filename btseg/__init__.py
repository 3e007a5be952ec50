"""btseg: bone tumour segmentation and classification on radiographs (BTXRD format).

Importing the package does no work: TensorFlow is imported only by the modules that build,
train or run models (btseg.models, btseg.pipeline, btseg.train, btseg.infer, btseg.evaluate).
"""

__version__ = "0.1.0"
