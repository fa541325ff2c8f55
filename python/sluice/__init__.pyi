import io
import dataclasses
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Literal, overload

# typeshed's name for what the buffer protocol gives (bytes, bytearray, memoryview, array, mmap,
# numpy's arrays): typing_extensions.Buffer is newer than Debian 12's typing_extensions and mypy.
from _typeshed import ReadableBuffer as Buffer

__version__: str
__all__: list[str]

class Error(OSError):
    message: str
    kind: str
    path: str | None
    offset: int | None
    detail: str
    index: int | None
    output: bytes
    def __init__(self, message: str, kind: str = ..., path: str | None = ..., offset: int | None = ...,
                 detail: str = ..., errno: int | None = ...) -> None: ...

class CorruptDataError(Error): ...
class TruncatedError(CorruptDataError, EOFError): ...
class TrailingGarbageError(CorruptDataError): ...
class OutputLimitError(Error): ...
class UsageError(Error, ValueError): ...

def formats() -> list[str]: ...
def format_info(format: str) -> dict[str, Any]: ...
def compress(data: Buffer, format: str = "gzip", level: int | None = None, threads: int | None = None, *,
             chunk_size: int | None = None, backend: str | None = None, mtime: int | None = None,
             compresslevel: int | None = None, **knobs: str) -> bytes: ...
def decompress(data: Buffer, *, format: str | None = None, max_output: int | None = None,
               threads: int | None = None) -> bytes: ...
@overload
def compress_many(payloads: Iterable[Buffer], format: str = "gzip", level: int | None = None,
                  threads: int | None = None, *, return_exceptions: Literal[False] = False,
                  chunk_size: int | None = None, backend: str | None = None, compresslevel: int | None = None,
                  **knobs: str) -> list[bytes]: ...
@overload
def compress_many(payloads: Iterable[Buffer], format: str = "gzip", level: int | None = None,
                  threads: int | None = None, *, return_exceptions: bool, chunk_size: int | None = None,
                  backend: str | None = None, compresslevel: int | None = None,
                  **knobs: str) -> list[bytes | Error]: ...
def compress_iter(items: Iterable[Buffer], format: str = "gzip", level: int | None = None, threads: int | None = None,
                  *, max_in_flight: int = 16, chunk_size: int | None = None, backend: str | None = None,
                  compresslevel: int | None = None, **knobs: str) -> Iterator[bytes]: ...

FLUSH_NONE: int
FLUSH_SYNC: int
FLUSH_FINISH: int

class Compressor:
    def __init__(self, format: str = "gzip", level: int | None = None, threads: int | None = None, *,
                 mtime: int | None = 0, chunk_size: int | None = None, backend: str | None = None,
                 compresslevel: int | None = None, **knobs: str) -> None: ...
    def compress(self, data: Buffer) -> bytes: ...
    def flush(self, mode: int = ...) -> bytes: ...

class Decompressor:
    def __init__(self, format: str | None = None, *, max_output: int | None = None,
                 threads: int | None = None) -> None: ...
    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: Buffer, max_length: int = -1) -> bytes: ...
    def flush(self) -> bytes: ...

@dataclasses.dataclass(frozen=True)
class FileResult:
    input: str
    output: str
    status: str
    input_bytes: int
    output_bytes: int
    seconds: float
    error: Error | None
    warning: Error | None
    @property
    def ok(self) -> bool: ...

def compress_files(paths: Iterable[str | bytes | Any], output_dir: str | Any | None = None, format: str = "gzip",
                   level: int | None = None, threads: int | None = None, *, overwrite: bool = False,
                   remove_inputs: bool = False, store_name: bool = True, fail_fast: bool = False,
                   progress: Callable[[FileResult], Any] | None = None, chunk_size: int | None = None,
                   backend: str | None = None, **knobs: str) -> list[FileResult]: ...
def decompress_files(paths: Iterable[str | bytes | Any], output_dir: str | Any | None = None,
                     threads: int | None = None, *, overwrite: bool = False, remove_inputs: bool = False,
                     max_output: int | None = None, fail_fast: bool = False,
                     progress: Callable[[FileResult], Any] | None = None) -> list[FileResult]: ...

class SluiceFile(io.BufferedIOBase):
    name: str
    def __init__(self, file: str | bytes | Any, mode: Literal["rb", "wb", "ab", "xb"] = "rb", *,
                 format: str | None = None, level: int | None = None, threads: int | None = None,
                 max_output: int | None = None, mtime: int | None = None, chunk_size: int | None = None,
                 backend: str | None = None, compresslevel: int | None = None, **knobs: str) -> None: ...
    def peek(self, size: int = 1) -> bytes: ...
    def rewind(self) -> None: ...
    @property
    def mode(self) -> str: ...
    @property
    def mtime(self) -> int | None: ...

@overload
def open(file: str | bytes | Any, mode: Literal["rb", "wb", "ab", "xb", "r", "w", "a", "x"] = "rb",
         format: str | None = None, level: int | None = None, threads: int | None = None,
         encoding: None = None, errors: None = None, newline: None = None, **kwargs: Any) -> SluiceFile: ...
@overload
def open(file: str | bytes | Any, mode: Literal["rt", "wt", "at", "xt"], format: str | None = None,
         level: int | None = None, threads: int | None = None, encoding: str | None = None,
         errors: str | None = None, newline: str | None = None, **kwargs: Any) -> io.TextIOWrapper: ...
@overload
def open(file: str | bytes | Any, mode: str = "rb", format: str | None = None, level: int | None = None,
         threads: int | None = None, encoding: str | None = None, errors: str | None = None,
         newline: str | None = None, **kwargs: Any) -> SluiceFile | io.TextIOWrapper: ...

@dataclasses.dataclass(frozen=True)
class PipelineItem:
    input: str
    output: str
    input_bytes: int
    output_bytes: int
    checksum: str

@dataclasses.dataclass(frozen=True)
class PipelineReport:
    items: list[PipelineItem]
    manifest: str
    seconds: float
    problems: list[str] = ...
    @property
    def ok(self) -> bool: ...

@overload
def run_pipeline(pipeline: str | bytes | Any, overrides: Iterable[str] | dict[str, Any] | None = None, *,
                 dry_run: Literal[False] = False,
                 on_item: Callable[[PipelineItem], Any] | None = None) -> PipelineReport: ...
@overload
def run_pipeline(pipeline: str | bytes | Any, overrides: Iterable[str] | dict[str, Any] | None = None, *,
                 dry_run: Literal[True], on_item: Callable[[PipelineItem], Any] | None = None) -> str: ...

from . import tar as tar
from . import zip as zip
