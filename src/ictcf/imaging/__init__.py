"""Medical images: reading, de-identification, lung extraction and the slice store."""
