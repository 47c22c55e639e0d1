// The stub backend: a group of one rank, where every collective is the identity or a copy.
#include <deque>
#include <map>

#include "../comm_util.h"
#include "meshflow/core/error.h"

namespace meshflow::distributed {
namespace {

using internal::check_tensor;
using internal::describe;

using Mailbox = std::map<int, std::deque<Tensor>>;

// A receive posted before its send (in one thread): it completes once the send has happened.
class StubRecv final : public Work {
 public:
  StubRecv(std::shared_ptr<Mailbox> mailbox, Tensor out, int tag)
      : Work(std::chrono::milliseconds(0)), mailbox_(std::move(mailbox)), out_(std::move(out)), tag_(tag) {}
  bool is_completed() override {
    auto& box = (*mailbox_)[tag_];
    if (done_ || box.empty()) return done_;
    Tensor m = box.front();
    box.pop_front();
    MF_CHECK(m.shape() == out_.shape() && m.dtype() == out_.dtype(), "recv: message ", describe(m),
             " does not fit the receive buffer ", describe(out_));
    out_.copy_(m);
    return done_ = true;
  }
  // Nothing else can send in a group of one, so waiting longer would not help.
  void wait(std::chrono::milliseconds) override {
    MF_CHECK(is_completed(), "recv: no message with tag ", tag_, " was sent to rank 0 of the stub group (size 1);"
             " it would never arrive");
  }

 private:
  std::shared_ptr<Mailbox> mailbox_;
  Tensor out_;
  int tag_;
  bool done_ = false;
};

class StubCommunicator final : public Communicator {
 public:
  explicit StubCommunicator(CommOptions options) : Communicator(options) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "stub"; }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    check_tensor(t, "all_reduce", true);
    internal::check_reduce_dtype(t, op, "all_reduce");
    return done();
  }
  WorkPtr broadcast_async(Tensor& t, int root) override {
    check_tensor(t, "broadcast", true);
    MF_CHECK(root == 0, "broadcast: root ", root, " is not a rank of this group of size 1");
    return done();
  }
  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    check_tensor(in, "all_gather", false);
    Shape s = internal::gathered_shape(in, out, 1, 0, "all_gather");
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    check_tensor(out, "all_gather", true);
    out.copy_(in);
    return done();
  }
  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    check_tensor(in, "reduce_scatter", false);
    internal::check_reduce_dtype(in, op, "reduce_scatter");
    Shape s = internal::scattered_shape(in.shape(), 1, 0);
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    check_tensor(out, "reduce_scatter", true);
    MF_CHECK(out.shape() == s && out.dtype() == in.dtype(), "reduce_scatter: out ", describe(out), " should be ",
             dtype_name(in.dtype()), shape_str(s));
    out.copy_(in);
    return done();
  }
  // Messages to oneself are kept in order per tag until received.
  WorkPtr send_async(const Tensor& t, int dst, int tag) override {
    check_tensor(t, "send", false);
    MF_CHECK(dst == 0, "send: destination rank ", dst, " is not a rank of this group of size 1");
    (*mailbox_)[tag].push_back(t.contiguous().clone());
    return done();
  }
  WorkPtr recv_async(Tensor& t, int src, int tag) override {
    check_tensor(t, "recv", true);
    MF_CHECK(src == 0, "recv: source rank ", src, " is not a rank of this group of size 1");
    return std::make_shared<StubRecv>(mailbox_, t, tag);
  }
  WorkPtr barrier_async() override { return done(); }

 private:
  static WorkPtr done() { return std::make_shared<internal::DoneWork>(); }
  std::shared_ptr<Mailbox> mailbox_ = std::make_shared<Mailbox>();
};

}  // namespace

std::shared_ptr<Communicator> make_stub_communicator(CommOptions options) {
  return std::make_shared<StubCommunicator>(options);
}

}  // namespace meshflow::distributed
