// The example SCRAM-SHA-256 exchange of RFC 7677, section 3 (user "user",
// password "pencil"), once for every test and benchmark that uses it: the
// SCRAM tests check our implementation against it byte for byte, and the
// codec's tests and benchmarks use its messages as realistic payloads.
// Constants only; safe to use from any thread.
#ifndef PCFS_TESTS_RFC7677_EXAMPLE_H_
#define PCFS_TESTS_RFC7677_EXAMPLE_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace pcfs::rfc7677 {

inline constexpr absl::string_view kUser = "user";
inline constexpr absl::string_view kPassword = "pencil";
inline constexpr absl::string_view kClientNonce = "rOprNGfwEbeRWgbNEkqO";
inline constexpr absl::string_view kServerNonce =
    "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
inline constexpr absl::string_view kSaltBase64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
inline constexpr uint32_t kIterations = 4096;
inline constexpr absl::string_view kClientFirst =
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
inline constexpr absl::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
inline constexpr absl::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
inline constexpr absl::string_view kServerFinal =
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

}  // namespace pcfs::rfc7677

#endif  // PCFS_TESTS_RFC7677_EXAMPLE_H_
