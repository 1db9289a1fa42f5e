"""`sslsan prepare`: the public datasets of the paper into sslsan manifests (datasets_spec.md).

* :mod:`.vggsound` training videos -> frames + 3 s clips + train/val manifests (parallel, resumable)
* :mod:`.vggss`, :mod:`.is3` (IS3 and IS3+), :mod:`.s4` test sets -> one manifest each
* :mod:`.common` PyAV decoding, file checks and the skip report shared by all of them
"""

from sslsan.data.prepare.common import MediaError, PrepareError, SkipReport, decode_clip

__all__ = ["MediaError", "PrepareError", "SkipReport", "decode_clip"]
