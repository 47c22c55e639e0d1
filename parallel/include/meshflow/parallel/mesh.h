// Mesh: named axes over a job's devices, e.g. Mesh({{"data", 2}, {"model", 2}}).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace meshflow {

struct MeshAxis {
  std::string name;
  int size = 1;
};

// Note [Meshes]
// A mesh arranges N devices (ranks) as an array with named axes; the last axis varies fastest,
// so in Mesh({{"data", 2}, {"model", 2}}) ranks 0 and 1 share data coordinate 0 and differ in
// "model". A tensor's layout names, per dimension, the axes that split it (Note [Sharding rules]
// in core/op.h). The mesh itself is plain data; a strategy binds it to its communicator.
class Mesh {
 public:
  // Throws naming the mesh when an axis has no name, a size below 1, or a name used twice.
  explicit Mesh(std::vector<MeshAxis> axes);

  const std::vector<MeshAxis>& axes() const { return axes_; }
  int size() const;                                  // devices: the product of the axis sizes
  bool has_axis(std::string_view name) const;
  int axis_index(std::string_view name) const;       // throws naming the axis and the mesh
  int axis_size(std::string_view name) const;
  std::vector<int> coords(int rank) const;           // rank -> one coordinate per axis
  int rank_of(const std::vector<int>& coords) const;
  // The ranks that differ from `rank` only along `axis`, in axis order (`rank`'s group on it).
  std::vector<int> axis_group(int rank, std::string_view axis) const;
  std::string str() const;                           // "Mesh(data=2, model=2)"

 private:
  std::vector<MeshAxis> axes_;
};

}  // namespace meshflow
