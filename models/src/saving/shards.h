// Sharded optimizer saves (Note [Saves under a strategy]): where each rank's piece of a slot lies in
// the whole tensor, and the index that puts the pieces back together on load.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/models/layer.h"

namespace meshflow::saving {

// One saved piece of a tensor: a box (start and extent per dimension). A ZeRO slice is a box of the
// flattened tensor (one dimension); a tensor-parallel part is a box of the tensor's own shape.
struct Piece {
  std::vector<int64_t> start, extent;
  bool operator==(const Piece&) const = default;
};

// The box a tensor-parallel part (Variable::is_part) holds of its whole weight, found by cutting a
// tensor of element numbers the way the part was cut; throws if the part is not one box.
Piece part_piece(const Variable& part);

// An index entry for a piece in `file`: {"file", "offset", "count"} for a flat piece (ZeRO), else
// {"file", "start", "extent"}.
Json piece_json(const std::string& file, const Piece& piece, bool flat);

// A file of a save whose id differs from config.json's: the folder was replaced while it was read.
void check_save_id(const Json& meta, const std::string& want, const std::string& path);

// The whole slots of a sharded save: each tensor assembled from the pieces its index names, which
// must tile it exactly (each element held once).
std::vector<std::pair<std::string, Tensor>> read_sharded_slots(const std::string& folder, const std::string& index_path,
                                                              const std::string& save_id, Json* meta);

}  // namespace meshflow::saving
