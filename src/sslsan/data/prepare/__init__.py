"""`sslsan prepare`: the public datasets of the paper into sslsan manifests (docs/datasets.md).

* :mod:`.vggsound` training videos -> frames + 3 s clips + train/val manifests (parallel, resumable)
* :mod:`.vggss`, :mod:`.is3` (IS3 and IS3+), :mod:`.s4` test sets -> one manifest each
* :mod:`.clips` the middle frame and audio window of a video (PyAV through sslsan.media)
* :mod:`.common` file checks, the skip report and the test-set pieces shared by all of them
"""

from sslsan.data.prepare.clips import decode_clip
from sslsan.data.prepare.common import MediaError, PrepareError, SkipReport

__all__ = ["MediaError", "PrepareError", "SkipReport", "decode_clip"]
