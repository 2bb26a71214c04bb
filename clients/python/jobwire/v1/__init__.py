"""The generated jobwire.v1 messages and gRPC stubs (``tools/gen-sdks``
writes this folder from ``proto/``; never edit it)::

    from jobwire.v1 import job_pb2, job_service_pb2_grpc
"""
