// Boost.Beast HTTP/1.1 server for the REST API (Note [HTTP sessions]).
#include "rest_server.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "meshflow/core/error.h"
#include "meshflow/serving/request_json.h"
#include "meshflow/serving/rest_api.h"

namespace meshflow::serving {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Note [HTTP sessions]: one session per connection, its handlers on one strand. A request must
// arrive whole within request_timeout_ms (the stream's deadline covers header and body, so a
// client that sends slowly or stops half-way is closed); a body over max_request_bytes gets 413
// and the connection is closed (its remaining bytes are not read). The answer may come from a
// model's thread: it is posted back to the session's strand to be written. Keep-alive connections
// read the next request after each answer; while draining, answers carry "Connection: close".

namespace {

struct Shared {
  RestApi& api;
  RestServerOptions options;
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> draining{false};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Shared& shared) : stream_(std::move(socket)), shared_(shared) {}

  void start() { asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); }); }

  // From drain(): an idle connection is closed now, a busy one after its answer.
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) self->close();
    });
  }

 private:
  void read() {
    if (shared_.draining) return close();
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(shared_.options.max_request_bytes));
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::milliseconds(shared_.options.request_timeout_ms));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // A client that sent "Expect: 100-continue" (curl does for large bodies) waits for a 100 before
  // it sends the body; a Content-Length over the limit has already failed the header read (413).
  void on_header(beast::error_code ec) {
    if (ec) return on_read(ec);
    auto self = shared_from_this();
    auto read_body = [self] {
      http::async_read(self->stream_, self->buffer_, *self->parser_,
                       [self](beast::error_code e, size_t) { self->on_read(e); });
    };
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *cont, [self, cont, read_body](beast::error_code e, size_t) {
        if (e) return self->close();
        read_body();
      });
      return;
    }
    read_body();
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof)
      return close();
    if (ec == http::error::body_limit) {
      return reply(413, error_json("the request body is larger than --max_request_bytes=" +
                                   std::to_string(shared_.options.max_request_bytes)),
                   "application/json", false);
    }
    if (ec) return reply(400, error_json("malformed HTTP request: " + ec.message()), "application/json", false);
    http::request<http::string_body> req = parser_->release();
    busy_ = true;
    keep_alive_ = req.keep_alive();
    ++shared_.in_flight;
    stream_.expires_never();
    auto self = shared_from_this();
    shared_.api.handle(std::string(req.method_string()), std::string(req.target()), std::move(req.body()),
                       [self](HttpAnswer a) {
                         asio::post(self->stream_.get_executor(), [self, a = std::move(a)]() mutable {
                           self->reply(a.status, std::move(a.body), a.content_type, self->keep_alive_, true);
                         });
                       });
  }

  void reply(int status, std::string body, const std::string& type, bool keep_alive, bool counted = false) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::server, "meshflow-serve");
    res->set(http::field::content_type, type);
    res->keep_alive(keep_alive && !shared_.draining);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(shared_.options.request_timeout_ms));
    http::async_write(stream_, *res, [self = shared_from_this(), res, counted](beast::error_code ec, size_t) {
      if (counted) --self->shared_.in_flight;
      self->busy_ = false;
      if (ec || !res->keep_alive()) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  Shared& shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool busy_ = false;
  bool keep_alive_ = false;
};

}  // namespace

struct RestServer::Impl {
  Impl(RestApi& api, RestServerOptions o) : shared{api, o}, acceptor(ioc), keep_running(ioc.get_executor()) {}
  asio::io_context ioc;
  Shared shared;
  tcp::acceptor acceptor;
  // While a request waits in a batcher no operation is pending on the context; without this guard
  // run() would return (when draining closed the acceptor) and the answer would never be written.
  asio::executor_work_guard<asio::io_context::executor_type> keep_running;
  std::mutex sessions_mutex;
  std::list<std::weak_ptr<Session>> sessions;
  std::vector<std::thread> threads;
  int port = 0;
  bool stopped = false;

  void accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      } else if (!shared.draining) {
        auto s = std::make_shared<Session>(std::move(socket), shared);
        {
          std::lock_guard<std::mutex> lock(sessions_mutex);
          sessions.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
          sessions.push_back(s);
        }
        s->start();
      }
      if (acceptor.is_open()) accept();
    });
  }

  void stop_threads() {
    if (stopped) return;
    stopped = true;
    keep_running.reset();
    ioc.stop();
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
};

RestServer::RestServer(RestApi& api, RestServerOptions options) : impl_(std::make_unique<Impl>(api, options)) {
  MF_CHECK(options.port >= 0 && options.port <= 65535, "--rest_api_port=", options.port, ": not a port");
  MF_CHECK(options.threads >= 1, "RestServer: threads must be at least 1, got ", options.threads);
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(options.port));
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  MF_CHECK(!ec, "--rest_api_port=", options.port, ": cannot listen on 127.0.0.1:", options.port, ": ", ec.message());
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  for (int i = 0; i < options.threads; ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
}

RestServer::~RestServer() {
  drain(std::chrono::milliseconds(0));
}

int RestServer::port() const { return impl_->port; }

bool RestServer::drain(std::chrono::milliseconds grace) {
  if (impl_->stopped) return true;
  impl_->shared.draining = true;
  asio::post(impl_->ioc, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  {
    std::lock_guard<std::mutex> lock(impl_->sessions_mutex);
    for (auto& w : impl_->sessions)
      if (auto s = w.lock()) s->close_if_idle();
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->shared.in_flight > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool finished = impl_->shared.in_flight == 0;
  // Let the last answers leave before the threads stop.
  if (finished) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  impl_->stop_threads();
  return finished;
}

}  // namespace meshflow::serving
