#include "bench/peerload/catalog.h"

#include <array>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/auth/scram.h"

namespace pcfs::peerload {
namespace {

constexpr std::array<absl::string_view, 6> kExtensions = {"mp3", "ogg", "pdf",
                                                          "txt", "iso", "png"};

}  // namespace

Catalog::Catalog() { Add("peerload-nobody-publishes-this.dat"); }

std::string Catalog::NameFor(absl::string_view user, int k) {
  // SHA-256 cannot fail on a healthy libcrypto; a zero digest would still
  // give a valid (if shared) name.
  Sha256Digest digest{};
  if (absl::StatusOr<Sha256Digest> d =
          Sha256(absl::StrCat("peerload name ", user, " ", k));
      d.ok()) {
    digest = *d;
  }
  const std::string hex = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), 6));
  return absl::StrCat(hex, ".", kExtensions[digest[6] % kExtensions.size()]);
}

uint32_t Catalog::Add(std::string name) {
  names_.push_back(std::move(name));
  is_published_.push_back(false);
  return static_cast<uint32_t>(names_.size() - 1);
}

void Catalog::MarkPublished(uint32_t index) {
  if (is_published_[index]) return;
  is_published_[index] = true;
  published_.push_back(index);
}

uint32_t Catalog::PickPublished(uint64_t random) const {
  if (published_.empty()) return 0;
  return published_[random % published_.size()];
}

}  // namespace pcfs::peerload
