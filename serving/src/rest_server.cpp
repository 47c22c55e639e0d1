// Boost.Beast HTTP/1.1 server for the REST API (Note [HTTP sessions], Note [Cheap requests]).
#include "rest_server.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
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
using Clock = std::chrono::steady_clock;
// Sockets bound to the io_context's own executor type, not the type-erased any_io_executor: every
// operation on one otherwise goes through a polymorphic executor (visible in a profile).
using Socket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;

// Note [HTTP sessions]: one session per connection, owned by one I/O thread (each thread runs its
// own io_context, so a session's handlers never run concurrently and need no strand). A request
// must arrive whole within request_timeout_ms (header and body: a client that sends slowly or stops
// half-way is closed); a body over max_request_bytes gets 413 and the connection is closed (its
// remaining bytes are not read). The answer may come from a model's thread: it is handed to the
// session's I/O thread to be written. Keep-alive connections read the next request after each
// answer (and are closed after request_timeout_ms idle); while draining, answers carry
// "Connection: close".
//
// Note [Cheap requests]: on this 2-core machine the HTTP work per request, not the model, bounded
// the served rate (bench_serving's /monitoring/noop row measures it), so the path is kept short:
//  - Beast's parser is fed by hand (basic_parser::put) from one buffer: one recv per request when
//    the client sends it in one piece, no composed operations and no completion posted per step.
//  - Deadlines are timestamps checked by one sweep timer per I/O thread, not a timer armed and
//    cancelled around every read and write.
//  - The answer's header is written by hand and sent with the body in one non-blocking writev;
//    only what the kernel does not take at once goes through an asynchronous write.
//  - Answers from a batch thread go into the I/O thread's mailbox; only the first of a batch posts
//    to (and wakes) the I/O thread, which then writes them all.
//  - Answers made on the I/O thread (errors, status, metadata) are written when handle() returns.

namespace {

struct Shared {
  RestApi& api;
  RestServerOptions options;
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> draining{false};
};

class Session;

// One I/O thread: its io_context, the sessions it owns, their deadline sweep and the mailbox that
// other threads leave answers in.
struct IoThread {
  explicit IoThread(Shared& s) : shared(s), work(ioc.get_executor()), sweep(ioc) {}
  Shared& shared;
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::steady_timer sweep;
  std::thread thread;
  std::atomic<std::thread::id> id{};
  std::vector<std::weak_ptr<Session>> sessions;  // touched on this thread only
  std::mutex mailbox_mutex;
  std::vector<std::pair<std::shared_ptr<Session>, HttpAnswer>> mailbox;

  void deliver(std::shared_ptr<Session> s, HttpAnswer a);  // from any thread
  void drain_mailbox();
  void sweep_deadlines();
  void close_idle();
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, IoThread& io) : socket_(std::move(socket)), io_(io), shared_(io.shared) {}

  // On the session's I/O thread.
  void start() {
    io_.sessions.push_back(weak_from_this());
    beast::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
    read_next();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  bool busy() const { return busy_; }
  bool overdue(Clock::time_point now) const { return !closed_ && now > deadline_; }

  // Writes an answer: the header by hand, then header and body in one writev (Note [Cheap requests]).
  void write_answer(int status, std::string body, const std::string& type, bool counted) {
    if (closed_) return finish(asio::error::operation_aborted, counted);
    const bool keep = keep_alive_ && !shared_.draining;
    keep_alive_ = keep;
    header_.clear();
    header_ += "HTTP/1.1 ";
    header_ += std::to_string(status);
    header_ += ' ';
    const beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
    header_.append(reason.data(), reason.size());
    header_ += "\r\nServer: meshflow-serve\r\nContent-Type: ";
    header_ += type;
    header_ += "\r\nContent-Length: ";
    header_ += std::to_string(body.size());
    header_ += keep ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
    body_ = std::move(body);
    const std::array<asio::const_buffer, 2> parts{asio::buffer(header_), asio::buffer(body_)};
    beast::error_code ec;
    size_t sent = socket_.write_some(parts, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {}, sent = 0;
    if (ec || sent == header_.size() + body_.size()) return finish(ec, counted);
    // The kernel took part: the rest goes asynchronously, with the client's deadline to read it.
    beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(parts);
    rest.consume(sent);
    deadline_ = Clock::now() + std::chrono::milliseconds(shared_.options.request_timeout_ms);
    asio::async_write(socket_, rest, [self = shared_from_this(), counted](beast::error_code e, size_t) {
      self->finish(e, counted);
    });
  }

 private:
  void read_next() {
    if (shared_.draining) return close();
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(shared_.options.max_request_bytes));
    parser_->header_limit(64 * 1024);
    parser_->eager(true);
    continue_sent_ = false;
    deadline_ = Clock::now() + std::chrono::milliseconds(shared_.options.request_timeout_ms);
    parse();
  }

  // Feeds what the buffer holds to the parser; reads more when it needs more.
  void parse() {
    while (buffer_.size() > 0) {
      beast::error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) ec = {};
      if (ec) return refuse(ec);
      if (parser_->is_done()) return on_request();
      if (parser_->is_header_done() && !continue_sent_ && !send_continue()) return close();
      if (used == 0) break;
    }
    if (buffer_.size() >= 64 * 1024 + 1024 && !parser_->is_header_done())
      return refuse(http::error::header_limit);
    socket_.async_read_some(buffer_.prepare(16 * 1024), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->buffer_.commit(n);
      if (self->closed_) return;
      if (!ec) return self->parse();
      if (ec == asio::error::eof && self->parser_->got_some()) {
        beast::error_code e;
        self->parser_->put_eof(e);
        if (e) return self->refuse(e);
        if (self->parser_->is_done()) return self->on_request();
      }
      self->close();  // the client went away (or the sweep closed it)
    });
  }

  // A client that sent "Expect: 100-continue" (curl does for large bodies) waits for a 100 before
  // it sends the body; a Content-Length over the limit has already failed the header (413).
  bool send_continue() {
    continue_sent_ = true;
    if (!beast::iequals(parser_->get()[http::field::expect], "100-continue")) return true;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    beast::error_code ec;
    return socket_.write_some(asio::buffer(kContinue.data(), kContinue.size()), ec) == kContinue.size() && !ec;
  }

  // A request that cannot be read: 413 for a body over the limit, 400 otherwise; then close.
  void refuse(beast::error_code ec) {
    keep_alive_ = false;
    deadline_ = Clock::time_point::max();
    busy_ = true;
    if (ec == http::error::body_limit)
      return write_answer(413, error_json("the request body is larger than --max_request_bytes=" +
                                          std::to_string(shared_.options.max_request_bytes)),
                          "application/json", false);
    write_answer(400, error_json("malformed HTTP request: " + ec.message()), "application/json", false);
  }

  void on_request() {
    http::request<http::string_body> req = parser_->release();
    busy_ = true;
    keep_alive_ = req.keep_alive();
    deadline_ = Clock::time_point::max();  // the server's turn; the model has no deadline here
    ++shared_.in_flight;
    ++nesting_;
    auto self = shared_from_this();
    in_handle_ = true;
    // The answer comes on this thread, before handle() returns, or later from a model's thread.
    const beast::string_view method = req.method_string(), target = req.target();
    shared_.api.handle({method.data(), method.size()}, {target.data(), target.size()}, std::move(req.body()),
                       [self](HttpAnswer a) {
                         if (std::this_thread::get_id() != self->io_.id.load(std::memory_order_relaxed))
                           self->io_.deliver(self, std::move(a));
                         else if (self->in_handle_)
                           self->inline_answer_ = std::move(a);
                         else
                           self->write_answer(a.status, std::move(a.body), a.content_type, true);
                       });
    in_handle_ = false;
    if (inline_answer_) {
      HttpAnswer a = std::move(*inline_answer_);
      inline_answer_.reset();
      write_answer(a.status, std::move(a.body), a.content_type, true);
    }
    --nesting_;
  }

  void finish(beast::error_code ec, bool counted) {
    if (counted) --shared_.in_flight;
    busy_ = false;
    if (ec || !keep_alive_ || closed_) return close();
    // Pipelined requests already in the buffer are answered in turn; past a few nested answers the
    // next one starts from the I/O loop instead, so the stack stays shallow.
    if (nesting_ > 4) {
      asio::post(io_.ioc, [self = shared_from_this()] {
        if (!self->closed_) self->read_next();
      });
      return;
    }
    read_next();
  }

  Socket socket_;
  IoThread& io_;
  Shared& shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<HttpAnswer> inline_answer_;
  std::string header_, body_;
  Clock::time_point deadline_ = Clock::time_point::max();
  int nesting_ = 0;
  bool busy_ = false;
  bool keep_alive_ = false;
  bool continue_sent_ = false;
  bool closed_ = false;
  bool in_handle_ = false;  // inside api.handle(): an answer on this thread waits for it to return
};

void IoThread::deliver(std::shared_ptr<Session> s, HttpAnswer a) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex);
    first = mailbox.empty();
    mailbox.emplace_back(std::move(s), std::move(a));
  }
  if (first) asio::post(ioc, [this] { drain_mailbox(); });
}

void IoThread::drain_mailbox() {
  std::vector<std::pair<std::shared_ptr<Session>, HttpAnswer>> answers;
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex);
    answers.swap(mailbox);
  }
  for (auto& [s, a] : answers) s->write_answer(a.status, std::move(a.body), a.content_type, true);
}

void IoThread::sweep_deadlines() {
  const auto now = Clock::now();
  size_t kept = 0;
  for (size_t i = 0; i < sessions.size(); ++i) {
    auto s = sessions[i].lock();
    if (!s) continue;
    if (s->overdue(now)) s->close();
    // Not a self-move: libstdc++'s weak_ptr empties itself when moved onto itself.
    if (kept != i) sessions[kept] = std::move(sessions[i]);
    ++kept;
  }
  sessions.resize(kept);
  const int64_t period = std::clamp<int64_t>(shared.options.request_timeout_ms / 8, 5, 250);
  sweep.expires_after(std::chrono::milliseconds(period));
  sweep.async_wait([this](beast::error_code ec) {
    if (!ec) sweep_deadlines();
  });
}

void IoThread::close_idle() {
  for (auto& w : sessions)
    if (auto s = w.lock(); s && !s->busy()) s->close();
}

}  // namespace

struct RestServer::Impl {
  Impl(RestApi& api, RestServerOptions o) : shared{api, o} {
    for (int i = 0; i < std::max(1, o.threads); ++i) io.push_back(std::make_unique<IoThread>(shared));
    acceptor.emplace(io[0]->ioc);
  }
  Shared shared;
  // Note [Shutdown order]: answers still in a mailbox hold sessions; the threads stop first, then the
  // acceptor and the I/O threads (with their sessions) go.
  std::vector<std::unique_ptr<IoThread>> io;
  std::optional<tcp::acceptor> acceptor;
  size_t next = 0;
  int port = 0;
  bool stopped = false;

  void accept() {
    IoThread& target = *io[next++ % io.size()];
    acceptor->async_accept(target.ioc, [this, &target](beast::error_code ec, Socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      } else if (!shared.draining) {
        auto s = std::make_shared<Session>(std::move(socket), target);
        asio::post(target.ioc, [s] { s->start(); });
      }
      if (acceptor->is_open()) accept();
    });
  }

  void stop_threads() {
    if (stopped) return;
    stopped = true;
    for (auto& t : io) {
      t->work.reset();
      t->ioc.stop();
    }
    for (auto& t : io)
      if (t->thread.joinable()) t->thread.join();
  }
};

RestServer::RestServer(RestApi& api, RestServerOptions options) : impl_(std::make_unique<Impl>(api, options)) {
  MF_CHECK(options.port >= 0 && options.port <= 65535, "--rest_api_port=", options.port, ": not a port");
  MF_CHECK(options.threads >= 1, "RestServer: threads must be at least 1, got ", options.threads);
  MF_CHECK(options.request_timeout_ms > 0, "--request_timeout_ms=", options.request_timeout_ms, ": must be positive");
  beast::error_code ec;
  tcp::acceptor& acceptor = *impl_->acceptor;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(options.port));
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  MF_CHECK(!ec, "--rest_api_port=", options.port, ": cannot listen on 127.0.0.1:", options.port, ": ", ec.message());
  impl_->port = acceptor.local_endpoint().port();
  impl_->accept();
  for (auto& t : impl_->io) {
    IoThread* io = t.get();
    asio::post(io->ioc, [io] { io->sweep_deadlines(); });
    io->thread = std::thread([io] {
      io->id = std::this_thread::get_id();
      io->ioc.run();
    });
  }
}

RestServer::~RestServer() {
  drain(std::chrono::milliseconds(0));
}

int RestServer::port() const { return impl_->port; }

bool RestServer::drain(std::chrono::milliseconds grace) {
  if (impl_->stopped) return true;
  impl_->shared.draining = true;
  asio::post(impl_->io[0]->ioc, [this] {
    beast::error_code ignored;
    impl_->acceptor->close(ignored);
  });
  for (auto& t : impl_->io) {
    IoThread* io = t.get();
    asio::post(io->ioc, [io] { io->close_idle(); });
  }
  const auto deadline = Clock::now() + grace;
  while (impl_->shared.in_flight > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool finished = impl_->shared.in_flight == 0;
  // Let the last answers leave before the threads stop.
  if (finished) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  impl_->stop_threads();
  return finished;
}

}  // namespace meshflow::serving
