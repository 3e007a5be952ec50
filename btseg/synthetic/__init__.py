"""Synthetic dataset in exactly the BTXRD format: the embedded default.

`generate(out_dir)` writes images/, Annotations/ (LabelMe JSON, tumour images only), dataset.xlsx
with the 37 BTXRD columns, and a SYNTHETIC.txt marker. The set reproduces the real data's
marginals (classes, subtypes, sites, regions, views, gender, centres, ages by class) and its
quirks: mostly ".jpeg" ids with a ".jpg" tail from centre 3, files whose extension on disk
differs from the table, one row with two subtypes, rows whose region contradicts their bone,
multi-hot sites on tumour rows and none on normal rows, consecutive ids showing one patient in
2-3 views, and a few byte-identical duplicate images.

The radiographs are rendered from a simple projection model: tubular bones (cortical shell and
trabecular medulla) inside a soft-tissue envelope, joints, noise, blur, an L/R marker and
sometimes a border. Lesions sit in bone and differ by subtype (outgrowths, lucent cysts with a
sclerotic rim, bubbly eccentric lucencies, ground glass, permeative destruction, mixed
lytic/sclerotic masses with spiculated periosteal reaction); their intensities overlap bone and
soft tissue, so a global threshold does not segment them.

Modules, one concern each:
    plan      which image gets which class, subtype, site, view, patient run and duplicate
    geometry  tubes, plates, the image frame and outline helpers
    anatomy   the scene library (bones and soft tissue of each view)
    layers    the attenuation layers everything is projected into
    lesions   lesion shapes from a parameter table per subtype, and their painters
    render    one radiograph from its spec
    write     files, LabelMe JSON, dataset.xlsx and the rendering process pool
    dicom     the images also as DICOM files (generate(..., dicom=True), demo-data --dicom)
"""

from btseg.synthetic.lesions import SUBTYPE_LESIONS
from btseg.synthetic.plan import COLUMNS
from btseg.synthetic.write import MARKER_NAME, MIN_IMAGES, generate

__all__ = ["COLUMNS", "MARKER_NAME", "MIN_IMAGES", "SUBTYPE_LESIONS", "generate"]
