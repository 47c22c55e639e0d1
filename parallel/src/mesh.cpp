// Mesh: axis names and sizes, rank <-> coordinates.
#include "meshflow/parallel/mesh.h"

#include "meshflow/core/error.h"

namespace meshflow {

Mesh::Mesh(std::vector<MeshAxis> axes) : axes_(std::move(axes)) {
  MF_CHECK(!axes_.empty(), "Mesh: give at least one axis, e.g. Mesh({{\"data\", 2}})");
  for (size_t i = 0; i < axes_.size(); ++i) {
    const MeshAxis& a = axes_[i];
    MF_CHECK(!a.name.empty(), "Mesh: axis ", i, " of ", str(), " has no name");
    MF_CHECK(a.size >= 1, "Mesh: axis '", a.name, "' of ", str(), " has size ", a.size, "; sizes must be >= 1");
    for (size_t j = 0; j < i; ++j)
      MF_CHECK(axes_[j].name != a.name, "Mesh: axis '", a.name, "' appears twice in ", str());
  }
  MF_CHECK(size() <= (1 << 24), "Mesh: ", str(), " has more devices than any job (", size(), ")");
}

int Mesh::size() const {
  int64_t n = 1;
  for (const auto& a : axes_) n *= a.size;
  return n > (1 << 30) ? (1 << 30) : static_cast<int>(n);
}

bool Mesh::has_axis(std::string_view name) const {
  for (const auto& a : axes_)
    if (a.name == name) return true;
  return false;
}

int Mesh::axis_index(std::string_view name) const {
  for (size_t i = 0; i < axes_.size(); ++i)
    if (axes_[i].name == name) return static_cast<int>(i);
  MF_THROW("mesh axis '", name, "' is not in ", str());
}

int Mesh::axis_size(std::string_view name) const { return axes_[static_cast<size_t>(axis_index(name))].size; }

std::vector<int> Mesh::coords(int rank) const {
  MF_CHECK(rank >= 0 && rank < size(), "Mesh::coords: rank ", rank, " is not in ", str(), " (", size(), " devices)");
  std::vector<int> c(axes_.size());
  for (size_t i = axes_.size(); i-- > 0;) {
    c[i] = rank % axes_[i].size;
    rank /= axes_[i].size;
  }
  return c;
}

int Mesh::rank_of(const std::vector<int>& coords) const {
  MF_CHECK(coords.size() == axes_.size(), "Mesh::rank_of: ", coords.size(), " coordinates for ", str());
  int rank = 0;
  for (size_t i = 0; i < axes_.size(); ++i) {
    MF_CHECK(coords[i] >= 0 && coords[i] < axes_[i].size, "Mesh::rank_of: coordinate ", coords[i], " on axis '",
             axes_[i].name, "' of ", str());
    rank = rank * axes_[i].size + coords[i];
  }
  return rank;
}

std::vector<int> Mesh::axis_group(int rank, std::string_view axis) const {
  const int a = axis_index(axis);
  std::vector<int> c = coords(rank);
  std::vector<int> out;
  for (int k = 0; k < axes_[static_cast<size_t>(a)].size; ++k) {
    c[static_cast<size_t>(a)] = k;
    out.push_back(rank_of(c));
  }
  return out;
}

std::string Mesh::str() const {
  std::string s = "Mesh(";
  for (size_t i = 0; i < axes_.size(); ++i) {
    if (i) s += ", ";
    s += (axes_[i].name.empty() ? std::string("?") : axes_[i].name) + "=" + std::to_string(axes_[i].size);
  }
  return s + ")";
}

}  // namespace meshflow
