"""Artefacts users upload: raw uploads waiting for their job, and corpora."""
