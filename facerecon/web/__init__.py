"""``facerecon serve``: a local web page to drop photos, watch the fit, turn the face in 3D and
download the files.

- :mod:`facerecon.web.config`: limits and fitting settings of a server;
- :mod:`facerecon.web.sessions`: one temporary folder per browser session, its jobs (a photo, or
  a person: several photos made into one face), expiry and the only place file paths are
  resolved (nothing outside a job's folder is ever served);
- :mod:`facerecon.web.media`: what an upload is (photo or video) and a video's sampled frames;
- :mod:`facerecon.web.worker`: the background fitting thread (one job at a time, a queue): a
  photo written by ``write_reconstruction``, a person combined by ``FaceReconstructor.combine``
  and written by ``write_person``;
- :mod:`facerecon.web.app`: the Starlette application (JSON API + the page in ``static/``).

Needs the ``web`` extra (``pip install facerecon[web]``): Starlette and uvicorn. The page's 3D
view is three.js, vendored under ``static/vendor/three`` (MIT), so the page needs no internet.
"""

from __future__ import annotations

from facerecon.web.config import WebConfig

__all__ = ["WebConfig"]
