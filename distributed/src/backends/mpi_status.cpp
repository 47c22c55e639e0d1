// MpiStatusChannel: a side channel where ranks ask each other how far they got, to name a missing rank.
#include "mpi_status.h"

#include <unistd.h>

#include <climits>

namespace meshflow::distributed::internal {
namespace {

constexpr int kQueryTag = 1;
constexpr int kReplyTagBase = 2;  // reply tag = base + query id % kReplyTags, so stale replies are not mistaken
constexpr int kReplyTags = 30000;
constexpr int kHostChars = 64;

}  // namespace

MpiStatusChannel::MpiStatusChannel(MPI_Comm parent) {
  MPI_Comm_dup(parent, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  char mine[kHostChars] = {0};
  gethostname(mine, kHostChars - 1);
  std::vector<char> all(static_cast<size_t>(size_) * kHostChars);
  MPI_Allgather(mine, kHostChars, MPI_CHAR, all.data(), kHostChars, MPI_CHAR, comm_);
  for (int r = 0; r < size_; ++r) hosts_.emplace_back(all.data() + r * kHostChars);
  responder_ = std::thread([this] { respond(); });
}

static bool mpi_is_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

void MpiStatusChannel::stop() {
  stop_ = true;
  if (responder_.joinable()) responder_.join();
}

MpiStatusChannel::~MpiStatusChannel() {
  stop();
  if (!mpi_is_finalized()) MPI_Comm_free(&comm_);
}

// One receive per peer, not one from MPI_ANY_SOURCE: once Open MPI knows a process died, it fails
// any-source receives on that communicator, and the responder would go deaf to the live peers.
void MpiStatusChannel::respond() {
  std::vector<int64_t> query(size_, 0);
  std::vector<MPI_Request> req(size_, MPI_REQUEST_NULL);
  for (int p = 0; p < size_; ++p)
    if (p != rank_) MPI_Irecv(&query[p], 1, MPI_INT64_T, p, kQueryTag, comm_, &req[p]);
  while (!stop_) {
    bool answered = false;
    for (int p = 0; p < size_; ++p) {
      if (req[p] == MPI_REQUEST_NULL) continue;
      int flag = 0;
      if (MPI_Test(&req[p], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        req[p] = MPI_REQUEST_NULL;  // that peer is gone: stop listening to it
        continue;
      }
      if (!flag) continue;
      int64_t reply = static_cast<int64_t>(posted_.load());
      MPI_Request sent;
      MPI_Isend(&reply, 1, MPI_INT64_T, p, kReplyTagBase + static_cast<int>(query[p] % kReplyTags), comm_, &sent);
      MPI_Wait(&sent, MPI_STATUS_IGNORE);  // one int64: eager, completes locally
      MPI_Irecv(&query[p], 1, MPI_INT64_T, p, kQueryTag, comm_, &req[p]);
      answered = true;
    }
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (mpi_is_finalized()) return;
  for (auto& r : req)
    if (r != MPI_REQUEST_NULL) {
      MPI_Cancel(&r);
      MPI_Wait(&r, MPI_STATUS_IGNORE);
    }
}

std::string MpiStatusChannel::explain(uint64_t seq, std::chrono::milliseconds window) {
  if (stop_ || mpi_is_finalized()) return "the communicator was already shut down";
  const int64_t id = next_query_.fetch_add(1) * size_ + rank_;  // unique across ranks
  const int tag = kReplyTagBase + static_cast<int>(id % kReplyTags);
  std::vector<int64_t> replies(size_, -1);
  std::vector<MPI_Request> recvs(size_, MPI_REQUEST_NULL), sends(size_, MPI_REQUEST_NULL);
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    MPI_Isend(&id, 1, MPI_INT64_T, p, kQueryTag, comm_, &sends[p]);
    MPI_Irecv(&replies[p], 1, MPI_INT64_T, p, tag, comm_, &recvs[p]);
  }
  // Each request on its own: MPI_Testall stops short when one peer is dead, hiding the live ones.
  std::vector<bool> failed(size_, false);
  const auto deadline = std::chrono::steady_clock::now() + window;
  for (;;) {
    bool pending = false;
    for (int p = 0; p < size_; ++p) {
      if (recvs[p] == MPI_REQUEST_NULL) continue;
      int flag = 0;
      if (MPI_Test(&recvs[p], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        failed[p] = true;  // MPI knows this peer is gone
        recvs[p] = MPI_REQUEST_NULL;
      } else if (!flag) {
        pending = true;
      }
    }
    if (!pending || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int p = 0; p < size_; ++p)  // one int64 each: eager, complete locally (or fail for a dead peer)
    if (sends[p] != MPI_REQUEST_NULL) MPI_Wait(&sends[p], MPI_STATUS_IGNORE);
  std::string behind, silent;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    if (failed[p] || recvs[p] != MPI_REQUEST_NULL) {  // no answer: give up on it
      if (recvs[p] != MPI_REQUEST_NULL) {
        MPI_Cancel(&recvs[p]);
        MPI_Wait(&recvs[p], MPI_STATUS_IGNORE);
      }
      silent += (silent.empty() ? "" : ", ") + std::to_string(p) + " (host " + hosts_[p] + ")";
    } else if (replies[p] < static_cast<int64_t>(seq)) {
      behind += (behind.empty() ? "" : "; ") + std::string("rank ") + std::to_string(p) + " (host " + hosts_[p] +
                ") has not reached it: it posted " + std::to_string(replies[p]) + " collectives, this is number " +
                std::to_string(seq);
    }
  }
  std::string text = behind;
  if (!silent.empty()) text += (text.empty() ? "" : "; ") + std::string("rank(s) ") + silent + " did not answer (dead or hung)";
  if (text.empty()) text = "every rank reached this collective; one is stuck inside it or in an earlier one";
  return text;
}

}  // namespace meshflow::distributed::internal
