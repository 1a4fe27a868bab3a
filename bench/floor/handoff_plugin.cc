// The floor of every nbdkit plugin that hands its requests to another
// thread and waits, as dst's plugin waits for its gRPC loop: a file plugin
// whose pread and pwrite are done by one worker thread while the nbdkit
// thread that took the request waits for it. No network and no protocol:
// what it costs beyond nbdkit's file plugin is nbdkit's thread-per-request
// model plus one hand-off each way, so its ratio to the file plugin bounds
// what dst's plugin can reach on the same machine. bench/run.sh runs it as
// the "floor" configuration.
//
//   nbdkit nbdkit-handoff-floor.so file=PATH [handoff=0]
//
// handoff=0 does the I/O on the nbdkit thread itself (the file plugin's
// model), to check that the plugin adds nothing else.
#include <fcntl.h>
#include <semaphore.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <sys/stat.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace {

struct Job {
  bool write = false;
  char* buf = nullptr;
  uint32_t count = 0;
  uint64_t offset = 0;
  int error = 0;
  sem_t done;  // posted by the worker (no lock on the way back)
  Job* next = nullptr;
};

std::string g_path;
bool g_handoff = true;
int g_fd = -1;

std::mutex g_mu;
std::condition_variable g_work_cv;
Job* g_head = nullptr;  // queued jobs, oldest first
Job* g_tail = nullptr;
bool g_worker_idle = false;
bool g_stopping = false;
std::thread g_worker;

int DoIo(Job* job) {
  uint64_t offset = job->offset;
  char* p = job->buf;
  uint32_t left = job->count;
  while (left > 0) {
    ssize_t n = job->write ? pwrite(g_fd, p, left, offset)
                           : pread(g_fd, p, left, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    p += n;
    offset += n;
    left -= n;
  }
  return 0;
}

// The worker: takes every queued job at once, does each and wakes its
// nbdkit thread. Returns at unload.
void Work() {
  for (;;) {
    Job* batch;
    {
      std::unique_lock<std::mutex> lock(g_mu);
      g_worker_idle = true;
      g_work_cv.wait(lock, [] { return g_head != nullptr || g_stopping; });
      g_worker_idle = false;
      if (g_head == nullptr) return;
      batch = g_head;
      g_head = g_tail = nullptr;
    }
    while (batch != nullptr) {
      Job* next = batch->next;  // read first: the job ends at the post
      batch->error = DoIo(batch);
      sem_post(&batch->done);
      batch = next;
    }
  }
}

int Run(bool write, void* buf, uint32_t count, uint64_t offset) {
  Job job;
  job.write = write;
  job.buf = static_cast<char*>(buf);
  job.count = count;
  job.offset = offset;
  if (!g_handoff) {
    job.error = DoIo(&job);
  } else {
    sem_init(&job.done, 0, 0);
    bool wake;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      (g_tail != nullptr ? g_tail->next : g_head) = &job;
      g_tail = &job;
      wake = g_worker_idle;
      g_worker_idle = false;
    }
    if (wake) g_work_cv.notify_one();
    while (sem_wait(&job.done) != 0) {
    }
    sem_destroy(&job.done);
  }
  if (job.error != 0) {
    nbdkit_set_error(job.error);
    return -1;
  }
  return 0;
}

int FloorConfig(const char* key, const char* value) {
  if (std::strcmp(key, "file") == 0) {
    g_path = value;
    return 0;
  }
  if (std::strcmp(key, "handoff") == 0) {
    if (std::strcmp(value, "0") != 0 && std::strcmp(value, "1") != 0) {
      nbdkit_error("handoff must be 0 or 1, not '%s'", value);
      return -1;
    }
    g_handoff = value[0] == '1';
    return 0;
  }
  nbdkit_error("unknown parameter '%s'", key);
  return -1;
}

int FloorGetReady() {
  if (g_path.empty()) {
    nbdkit_error("file= is required");
    return -1;
  }
  g_fd = open(g_path.c_str(), O_RDWR | O_CLOEXEC);
  if (g_fd < 0) {
    nbdkit_error("open %s: %m", g_path.c_str());
    return -1;
  }
  return 0;
}

// After nbdkit forks into the background: threads started before would be
// lost.
int FloorAfterFork() {
  if (g_handoff) g_worker = std::thread(Work);
  return 0;
}

// Every connection is closed: stops the worker (a thread still waiting on
// the condition variables would hang their destruction at exit).
void FloorUnload() {
  if (!g_worker.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_stopping = true;
  }
  g_work_cv.notify_one();
  g_worker.join();
}

void* FloorOpen(int /*readonly*/) { return NBDKIT_HANDLE_NOT_NEEDED; }

int64_t FloorGetSize(void* /*handle*/) {
  struct stat st;
  if (fstat(g_fd, &st) < 0) {
    nbdkit_error("fstat %s: %m", g_path.c_str());
    return -1;
  }
  return st.st_size;
}

int FloorPread(void* /*handle*/, void* buf, uint32_t count, uint64_t offset,
               uint32_t /*flags*/) {
  return Run(false, buf, count, offset);
}

int FloorPwrite(void* /*handle*/, const void* buf, uint32_t count,
                uint64_t offset, uint32_t /*flags*/) {
  return Run(true, const_cast<void*>(buf), count, offset);
}

nbdkit_plugin MakePlugin() {
  nbdkit_plugin plugin{};
  plugin.name = "handoff-floor";
  plugin.description = "A file plugin doing its I/O on one worker thread.";
  plugin.config = FloorConfig;
  plugin.config_help =
      "file=PATH   (required) the file to serve\n"
      "handoff=0   do the I/O on nbdkit's thread instead (default 1)";
  plugin.get_ready = FloorGetReady;
  plugin.after_fork = FloorAfterFork;
  plugin.unload = FloorUnload;
  plugin.open = FloorOpen;
  plugin.get_size = FloorGetSize;
  plugin.pread = FloorPread;
  plugin.pwrite = FloorPwrite;
  plugin.errno_is_preserved = 0;
  return plugin;
}

nbdkit_plugin g_plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(g_plugin)
