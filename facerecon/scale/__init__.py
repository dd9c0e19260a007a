"""Reconstruction at scale: many photos over many workers.

- :mod:`facerecon.scale.ray_pipeline`: a Ray Data pipeline (read → prepare → fit or R-Net →
  write → report) on a local Ray instance or an existing cluster (``RAY_ADDRESS``). Needs the
  ``ray`` extra: ``pip install 'facerecon[ray]'``; nothing here is imported by the core package.
"""
