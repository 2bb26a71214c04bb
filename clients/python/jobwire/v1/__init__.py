"""The generated jobwire.v1 messages and gRPC stubs.

The code itself is in ``jobwire/_gen/jobwire/v1`` (``tools/gen-sdks`` writes
it from ``proto/``; never edit it). This package only points its search path
there, so the generated modules import each other as ``jobwire.v1.*``, the
proto package name::

    from jobwire.v1 import job_pb2, job_service_pb2_grpc
"""

import os as _os

__path__.append(  # noqa: F821 (a package's __path__)
    _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), "_gen",
                  "jobwire", "v1"))
