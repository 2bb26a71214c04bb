from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from jobwire.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("job", "request_id")
    JOB_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    request_id: str
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    created: bool
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., created: bool = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[SubmitJobRequest, _Mapping]]] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("ids", "created")
    IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    created: int
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., created: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("filter", "order_by", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: str
    order_by: str
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[str] = ..., order_by: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_job_pb2.Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_job_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id", "after_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_seq: int
    def __init__(self, id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("event", "heartbeat", "draining", "reset")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    event: _job_pb2.JobEvent
    heartbeat: _job_pb2.Heartbeat
    draining: _job_pb2.Draining
    reset: _job_pb2.Reset
    def __init__(self, event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[_job_pb2.Heartbeat, _Mapping]] = ..., draining: _Optional[_Union[_job_pb2.Draining, _Mapping]] = ..., reset: _Optional[_Union[_job_pb2.Reset, _Mapping]] = ...) -> None: ...

class WatchJobsRequest(_message.Message):
    __slots__ = ("filter", "after_event_id")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    filter: str
    after_event_id: int
    def __init__(self, filter: _Optional[str] = ..., after_event_id: _Optional[int] = ...) -> None: ...

class WatchJobsResponse(_message.Message):
    __slots__ = ("event", "heartbeat", "draining", "reset")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    event: _job_pb2.JobEvent
    heartbeat: _job_pb2.Heartbeat
    draining: _job_pb2.Draining
    reset: _job_pb2.Reset
    def __init__(self, event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[_job_pb2.Heartbeat, _Mapping]] = ..., draining: _Optional[_Union[_job_pb2.Draining, _Mapping]] = ..., reset: _Optional[_Union[_job_pb2.Reset, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("id", "additional_attempts")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    additional_attempts: int
    def __init__(self, id: _Optional[str] = ..., additional_attempts: _Optional[int] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("job", "update_mask", "etag")
    JOB_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class BulkUpdateJobsRequest(_message.Message):
    __slots__ = ("ids", "filter", "patch", "update_mask", "action", "expected_states", "dry_run")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[BulkUpdateJobsRequest.Action]
        ACTION_CANCEL: _ClassVar[BulkUpdateJobsRequest.Action]
        ACTION_PAUSE: _ClassVar[BulkUpdateJobsRequest.Action]
        ACTION_RESUME: _ClassVar[BulkUpdateJobsRequest.Action]
        ACTION_RETRY: _ClassVar[BulkUpdateJobsRequest.Action]
        ACTION_DELETE: _ClassVar[BulkUpdateJobsRequest.Action]
    ACTION_UNSPECIFIED: BulkUpdateJobsRequest.Action
    ACTION_CANCEL: BulkUpdateJobsRequest.Action
    ACTION_PAUSE: BulkUpdateJobsRequest.Action
    ACTION_RESUME: BulkUpdateJobsRequest.Action
    ACTION_RETRY: BulkUpdateJobsRequest.Action
    ACTION_DELETE: BulkUpdateJobsRequest.Action
    class Ids(_message.Message):
        __slots__ = ("ids",)
        IDS_FIELD_NUMBER: _ClassVar[int]
        ids: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ids: BulkUpdateJobsRequest.Ids
    filter: str
    patch: _job_pb2.Job
    update_mask: _field_mask_pb2.FieldMask
    action: BulkUpdateJobsRequest.Action
    expected_states: _containers.RepeatedScalarFieldContainer[_job_pb2.Job.State]
    dry_run: bool
    def __init__(self, ids: _Optional[_Union[BulkUpdateJobsRequest.Ids, _Mapping]] = ..., filter: _Optional[str] = ..., patch: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., action: _Optional[_Union[BulkUpdateJobsRequest.Action, str]] = ..., expected_states: _Optional[_Iterable[_Union[_job_pb2.Job.State, str]]] = ..., dry_run: bool = ...) -> None: ...

class BulkUpdateJobsResponse(_message.Message):
    __slots__ = ("matched", "updated", "skipped", "failed", "failures")
    class Failure(_message.Message):
        __slots__ = ("id", "code", "message")
        ID_FIELD_NUMBER: _ClassVar[int]
        CODE_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        id: str
        code: int
        message: str
        def __init__(self, id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    matched: int
    updated: int
    skipped: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[BulkUpdateJobsResponse.Failure]
    def __init__(self, matched: _Optional[int] = ..., updated: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[BulkUpdateJobsResponse.Failure, _Mapping]]] = ...) -> None: ...

class ExplainJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExplainJobResponse(_message.Message):
    __slots__ = ("job", "gates")
    class Gate(_message.Message):
        __slots__ = ("type", "description")
        TYPE_FIELD_NUMBER: _ClassVar[int]
        DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
        type: str
        description: str
        def __init__(self, type: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
    JOB_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    gates: _containers.RepeatedCompositeFieldContainer[ExplainJobResponse.Gate]
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., gates: _Optional[_Iterable[_Union[ExplainJobResponse.Gate, _Mapping]]] = ...) -> None: ...
