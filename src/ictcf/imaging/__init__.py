"""Medical images: reading, de-identification, lung extraction and the slice store.

Readers: :mod:`~ictcf.imaging.archive` (safe collection of uploaded files and zips),
:mod:`~ictcf.imaging.dicom_series` (DICOM series planning and Hounsfield-unit slices),
:mod:`~ictcf.imaging.geometry` (patient-space geometry), :mod:`~ictcf.imaging.raster`
(JPEG/PNG slices) and :mod:`~ictcf.imaging.nifti` (NIfTI volumes). Submodules are imported
on demand so that importing this package stays cheap.
"""
