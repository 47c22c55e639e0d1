// meshflow-serve: TF-Serving-compatible model server (flags as tensorflow_model_server's).
// Prints "listening rest=P grpc=Q" once ready (grpc=-1 without --port); SIGTERM or SIGINT stop it
// after the requests in flight are answered. Exit code 0 after a clean stop, 1 on a startup error.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "meshflow/serving/config.h"
#include "meshflow/serving/server.h"

int main(int argc, char** argv) {
  namespace serving = meshflow::serving;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::cout << serving::flags_help();
      return 0;
    }
  // Note [Intra-op threads]: OpenMP and OpenBLAS read their thread counts from the environment once,
  // at start, and omp_set_num_threads() changes only the calling thread's; so that every thread of
  // the server (HTTP, gRPC, batch) runs its kernels on N threads, the program runs itself again with
  // OMP_NUM_THREADS=N (on a machine shared with the clients, more oversubscribes the cores).
  try {
    const int n = serving::parse_flags(args).intra_op_parallelism;
    const std::string want = std::to_string(n);
    const char* have = std::getenv("OMP_NUM_THREADS");
    if (n > 0 && (have == nullptr || want != have)) {
      setenv("OMP_NUM_THREADS", want.c_str(), 1);
      setenv("OPENBLAS_NUM_THREADS", want.c_str(), 1);
      execv("/proc/self/exe", argv);
      std::cerr << "meshflow-serve: cannot run again with OMP_NUM_THREADS=" << want << " (" << std::strerror(errno)
                << "); only the batch threads will use " << want << "\n";
    }
  } catch (const std::exception&) {
    // reported below, where the flags are parsed again
  }
  // The signals are taken by a thread that waits for them, so no handler runs inside the server.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    serving::Server server(serving::parse_flags(args));
    std::cout << "listening rest=" << server.rest_port() << " grpc=" << server.grpc_port() << std::endl;
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&signals, &sig);
      std::cerr << "meshflow-serve: signal " << sig << ", finishing the requests in flight\n";
      server.shutdown();
    });
    waiter.detach();
    server.wait();
    std::cerr << "meshflow-serve: stopped\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "meshflow-serve: " << e.what() << "\n";
    return 1;
  }
}
