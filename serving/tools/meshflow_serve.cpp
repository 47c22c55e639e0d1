// meshflow-serve: TF-Serving-compatible model server (flags as tensorflow_model_server's).
// Prints "listening rest=P grpc=Q" once ready (grpc=-1 without --port); SIGTERM or SIGINT stop it
// after the requests in flight are answered. Exit code 0 after a clean stop, 1 on a startup error.
#include <csignal>
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
