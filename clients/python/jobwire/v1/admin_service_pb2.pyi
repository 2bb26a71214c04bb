from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WebhookDeliveryRecord(_message.Message):
    __slots__ = ("id", "job_id", "event_id", "webhook_id", "type", "url", "state", "attempts", "next_attempt_time", "last_attempt_time", "last_http_status", "last_error", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[WebhookDeliveryRecord.State]
        STATE_PENDING: _ClassVar[WebhookDeliveryRecord.State]
        STATE_DELIVERED: _ClassVar[WebhookDeliveryRecord.State]
        STATE_DEAD: _ClassVar[WebhookDeliveryRecord.State]
    STATE_UNSPECIFIED: WebhookDeliveryRecord.State
    STATE_PENDING: WebhookDeliveryRecord.State
    STATE_DELIVERED: WebhookDeliveryRecord.State
    STATE_DEAD: WebhookDeliveryRecord.State
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    job_id: str
    event_id: int
    webhook_id: str
    type: str
    url: str
    state: WebhookDeliveryRecord.State
    attempts: int
    next_attempt_time: _timestamp_pb2.Timestamp
    last_attempt_time: _timestamp_pb2.Timestamp
    last_http_status: int
    last_error: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., job_id: _Optional[str] = ..., event_id: _Optional[int] = ..., webhook_id: _Optional[str] = ..., type: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[_Union[WebhookDeliveryRecord.State, str]] = ..., attempts: _Optional[int] = ..., next_attempt_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_http_status: _Optional[int] = ..., last_error: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("job_id", "failed_only", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    failed_only: bool
    page_size: int
    page_token: str
    def __init__(self, job_id: _Optional[str] = ..., failed_only: bool = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDeliveryRecord]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDeliveryRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class PauseDispatchRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ResumeDispatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DispatchState(_message.Message):
    __slots__ = ("paused", "reason")
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    reason: str
    def __init__(self, paused: bool = ..., reason: _Optional[str] = ...) -> None: ...

class Queue(_message.Message):
    __slots__ = ("name", "paused", "resume_time", "concurrency_limit", "weight", "counts", "workers", "finished_last_minute", "free_slots")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RESUME_TIME_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    resume_time: _timestamp_pb2.Timestamp
    concurrency_limit: int
    weight: int
    counts: _containers.ScalarMap[str, int]
    workers: int
    finished_last_minute: int
    free_slots: int
    def __init__(self, name: _Optional[str] = ..., paused: bool = ..., resume_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., concurrency_limit: _Optional[int] = ..., weight: _Optional[int] = ..., counts: _Optional[_Mapping[str, int]] = ..., workers: _Optional[int] = ..., finished_last_minute: _Optional[int] = ..., free_slots: _Optional[int] = ...) -> None: ...

class PauseQueueRequest(_message.Message):
    __slots__ = ("name", "resume_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    resume_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., resume_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResumeQueueRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[Queue]
    def __init__(self, queues: _Optional[_Iterable[_Union[Queue, _Mapping]]] = ...) -> None: ...

class UpdateQueueRequest(_message.Message):
    __slots__ = ("queue", "update_mask")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "uptime", "listeners", "storage_path", "storage_bytes", "dispatch", "draining", "job_counts", "workers", "watchers", "start_time", "storage", "last_event_id", "nodes")
    class JobCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    JOB_COUNTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    WATCHERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime: _duration_pb2.Duration
    listeners: _containers.RepeatedScalarFieldContainer[str]
    storage_path: str
    storage_bytes: int
    dispatch: DispatchState
    draining: bool
    job_counts: _containers.ScalarMap[str, int]
    workers: int
    watchers: int
    start_time: _timestamp_pb2.Timestamp
    storage: StorageStats
    last_event_id: int
    nodes: _containers.RepeatedCompositeFieldContainer[ServerNode]
    def __init__(self, version: _Optional[str] = ..., uptime: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., listeners: _Optional[_Iterable[str]] = ..., storage_path: _Optional[str] = ..., storage_bytes: _Optional[int] = ..., dispatch: _Optional[_Union[DispatchState, _Mapping]] = ..., draining: bool = ..., job_counts: _Optional[_Mapping[str, int]] = ..., workers: _Optional[int] = ..., watchers: _Optional[int] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., storage: _Optional[_Union[StorageStats, _Mapping]] = ..., last_event_id: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[ServerNode, _Mapping]]] = ...) -> None: ...

class ServerNode(_message.Message):
    __slots__ = ("id", "name", "start_time", "heartbeat_time", "answering")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    ANSWERING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    start_time: _timestamp_pb2.Timestamp
    heartbeat_time: _timestamp_pb2.Timestamp
    answering: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., answering: bool = ...) -> None: ...

class StorageStats(_message.Message):
    __slots__ = ("commits", "requests", "write_requests", "queue_wait", "apply", "commit", "complete")
    COMMITS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    WRITE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_FIELD_NUMBER: _ClassVar[int]
    APPLY_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    commits: int
    requests: int
    write_requests: int
    queue_wait: _duration_pb2.Duration
    apply: _duration_pb2.Duration
    commit: _duration_pb2.Duration
    complete: _duration_pb2.Duration
    def __init__(self, commits: _Optional[int] = ..., requests: _Optional[int] = ..., write_requests: _Optional[int] = ..., queue_wait: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., apply: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., commit: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., complete: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("data", "offset", "total_bytes")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...
