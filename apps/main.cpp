// sluice: the command-line program. Parses arguments, then hands the work to the library.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <new>
#include <system_error>

#include "apps/cli.h"
#include "apps/demo.h"
#include "apps/exit_status.h"
#include "apps/file_jobs.h"
#include "apps/run_command.h"
#include "apps/tar_command.h"
#include "apps/zip_command.h"
#include "sluice/io.h"

namespace {

// An interrupted run publishes nothing: remove the outputs not yet complete, then die of the same
// signal so the shell sees 130 (SIGINT) or 143 (SIGTERM). While a file is being created in
// place, the signal comes again once it is made (so it is removed too).
extern "C" void on_fatal_signal(int signal_number) {
  if (!sluice::remove_pending_outputs(signal_number)) return;
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

// Diagnostics go to standard error through stdio (fmt::print, which throws when a write fails):
// one that cannot be written (stderr closed, or a full disk) is dropped, as gzip's are, and the
// run goes on to its own exit status, where the throw ended it in std::terminate (exit 134), in
// the middle of a batch's callbacks too.
ssize_t write_diagnostic(void*, const char* bytes, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(STDERR_FILENO, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(size);
}

void drop_unwritable_diagnostics() {
  cookie_io_functions_t functions{};
  functions.write = write_diagnostic;
  if (FILE* file = ::fopencookie(nullptr, "w", functions)) {
    std::setvbuf(file, nullptr, _IONBF, 0);
    stderr = file;
  }
}

int run(int argc, char** argv) {
  // `sluice tar`, `zip`, `run` and `transcode` have options of their own, so they are dispatched first.
  if (argc >= 2 && std::strcmp(argv[1], "tar") == 0) return sluice::app::run_tar_command(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "zip") == 0) return sluice::app::run_zip_command(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return sluice::app::run_pipeline_command(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "transcode") == 0) {
    return sluice::app::run_transcode_command(argc - 1, argv + 1);
  }
  const auto parsed = sluice::app::parse_command_line(argc, argv);
  if (!parsed.options) return parsed.exit_status;
  const auto& options = *parsed.options;
  if (options.mode == sluice::app::Mode::kDemo) return sluice::app::run_demo(options);
  return sluice::app::run_file_jobs(options);
}

// What the program printed on standard output through stdio (help, listings, JSON records) must
// have got there: a full disk is an error, as in gzip and coreutils (close_stdout). The data
// itself is written with write(2) (FdSink), which reports its own errors.
int stdout_failed(int error_number) {
  std::fprintf(stderr, "sluice: standard output: write error: %s\n", std::strerror(error_number));
  return sluice::app::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  // A signal the parent set to be ignored stays ignored (nohup's SIGHUP, SIGINT of a background
  // job in a non-interactive shell), as gzip does.
  // SIGPIPE (a reader of our output or messages gone) and SIGXCPU end the run as gzip's do, the
  // temporaries removed; past `ulimit -f` a write fails (EFBIG) and the output fails as on a full
  // disk, where SIGXFSZ killed the process with its temporary left.
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXCPU}) {
    struct sigaction current {};
    if (::sigaction(signal_number, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) continue;
    std::signal(signal_number, on_fatal_signal);
  }
  std::signal(SIGXFSZ, SIG_IGN);
  // The handler removes what is not complete: small files extracted may be created in place.
  sluice::set_pending_outputs_removed_on_signals(true);
  drop_unwritable_diagnostics();
  int status = 0;
  try {
    status = run(argc, argv);
  } catch (const std::system_error& e) {
    if (!std::ferror(stdout)) throw;  // not fmt::print on stdout: as it was
    return stdout_failed(e.code().value());
  } catch (const std::bad_alloc&) {  // past what the commands bound (their own errors name the file)
    std::fputs("sluice: out of memory\n", stderr);
    return sluice::app::kExitFailure;
  }
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) return stdout_failed(errno != 0 ? errno : EIO);
  return status;
}
