// File windows and the SIGBUS guard that makes mapping a file someone may truncate safe.
#include "core/mapped_file.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "sluice/error.h"

namespace sluice::detail {
namespace {

// Live windows, in fixed storage that the signal handler reads without locks or allocation.
// A window registers before anyone reads it and unregisters before it is unmapped.
constexpr int kGuardSlots = 256;

struct GuardSlot {
  std::atomic<std::uintptr_t> begin{0};  // 0: free
  std::atomic<std::uintptr_t> end{0};
  std::atomic<std::uint64_t> file_offset{0};  // file offset of `begin`
  std::atomic<MappedFileState*> file{nullptr};
};

GuardSlot g_slots[kGuardSlots];
std::mutex g_slots_mutex;
std::once_flag g_install_once;
bool g_installed = false;
struct sigaction g_previous {};
std::uintptr_t g_page_bytes = 4096;

void lower_to(std::atomic<std::uint64_t>& value, std::uint64_t candidate) {
  std::uint64_t now = value.load(std::memory_order_relaxed);
  while (candidate < now && !value.compare_exchange_weak(now, candidate, std::memory_order_relaxed)) {
  }
}

extern "C" void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  for (GuardSlot& slot : g_slots) {
    const std::uintptr_t begin = slot.begin.load(std::memory_order_acquire);
    const std::uintptr_t end = slot.end.load(std::memory_order_acquire);
    if (begin == 0 || address < begin || address >= end) continue;
    // The file lost this page (it was truncated under us). Zeros from here to the window's end
    // replace what it lost, so the access succeeds when retried; the reader reports the loss.
    // The system call itself, not mmap(): sanitizers intercept mmap(), and ThreadSanitizer takes
    // the remapping for a write racing with other threads' reads of these pages, which had
    // nothing to read there (reading a lost page faults: they come through here too) and read
    // the zeros after it.
    const std::uintptr_t page = address & ~(g_page_bytes - 1);
    void* zeros = reinterpret_cast<void*>(::syscall(SYS_mmap, page, end - page, PROT_READ,
                                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    if (zeros == MAP_FAILED) break;  // cannot repair: fall through to the default
    if (MappedFileState* file = slot.file.load(std::memory_order_acquire)) {
      lower_to(file->first_lost_offset, slot.file_offset.load(std::memory_order_relaxed) + (page - begin));
      file->lost_pages.store(true, std::memory_order_release);
    }
    return;
  }
  // Not one of ours: what would have happened without this handler.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(signal_number, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(signal_number);
    return;
  }
  // The default action: restore it and deliver the signal again (on return from this handler for
  // a signal sent with kill/raise; a fault also repeats when the instruction is retried).
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  ::sigaction(SIGBUS, &fallback, nullptr);
  ::raise(SIGBUS);
}

bool install_guard() {
  std::call_once(g_install_once, [] {
    g_page_bytes = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    g_installed = ::sigaction(SIGBUS, &action, &g_previous) == 0;
  });
  return g_installed;
}

int register_window(std::uintptr_t begin, std::uintptr_t end, std::uint64_t file_offset, MappedFileState* file) {
  std::lock_guard lock(g_slots_mutex);
  for (int i = 0; i < kGuardSlots; ++i) {
    GuardSlot& slot = g_slots[i];
    if (slot.begin.load(std::memory_order_relaxed) != 0) continue;
    slot.file.store(file, std::memory_order_relaxed);
    slot.file_offset.store(file_offset, std::memory_order_relaxed);
    slot.end.store(end, std::memory_order_relaxed);
    slot.begin.store(begin, std::memory_order_release);
    return i;
  }
  return -1;
}

void unregister_window(int i) {
  std::lock_guard lock(g_slots_mutex);
  GuardSlot& slot = g_slots[i];
  slot.begin.store(0, std::memory_order_release);
  slot.end.store(0, std::memory_order_release);
  slot.file.store(nullptr, std::memory_order_release);
}

}  // namespace

FileWindow::~FileWindow() {
  if (guard_slot_ >= 0) unregister_window(guard_slot_);
  if (data_ != nullptr) ::munmap(const_cast<std::uint8_t*>(data_), lead_bytes_ + size_);
}

FileMapper::FileMapper(int fd, std::uint64_t file_bytes) : fd_(fd), state_(std::make_shared<MappedFileState>()) {
  state_->bytes_when_opened = file_bytes;
}

bool FileMapper::enabled() {
  static const bool on = [] {
    const char* setting = std::getenv("SLUICE_MAP_INPUT");
    return setting == nullptr || std::strcmp(setting, "0") != 0;
  }();
  return on;
}

std::shared_ptr<FileWindow> FileMapper::map(std::uint64_t offset, std::size_t min_bytes, std::size_t window_bytes) {
  const std::uint64_t end_of_file = state_->bytes_when_opened;
  if (offset >= end_of_file || !install_guard()) return nullptr;
  const std::uint64_t left = end_of_file - offset;
  const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(left, std::max(min_bytes, window_bytes)));
  const std::uint64_t start = offset & ~static_cast<std::uint64_t>(g_page_bytes - 1);
  const std::size_t lead = static_cast<std::size_t>(offset - start);
  void* data = ::mmap(nullptr, lead + size, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(start));
  if (data == MAP_FAILED) return nullptr;
  std::shared_ptr<FileWindow> window(new FileWindow());
  window->data_ = static_cast<const std::uint8_t*>(data);
  window->lead_bytes_ = lead;
  window->size_ = size;
  window->offset_ = offset;
  window->state_ = state_;
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  window->guard_slot_ = register_window(begin, begin + lead + size, start, state_.get());
  if (window->guard_slot_ < 0) return nullptr;  // unguarded is unsafe: read instead (unmapped here)
  return window;
}

void throw_lost_pages(const MappedFileState& file, const std::string& path) {
  throw Error(ErrorKind::kIo,
              fmt::format("file shrank while being read (it had {} bytes when opened)", file.bytes_when_opened), path,
              file.first_lost_offset.load(std::memory_order_relaxed));
}

}  // namespace sluice::detail
