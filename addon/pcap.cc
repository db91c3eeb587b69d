// pcap-filter expressions (lib/modules/tracer/pcap.ts): compiled with libpcap into classic
// BPF for a link type (Ethernet for PacketTracer), which the tracer's in-kernel interpreter
// runs (bpf/tracer/cbpf.h). Built only with libpcap (BPFKIT_HAVE_PCAP); without it the
// function says so as ERR_UNSUPPORTED.
//
// pcapCompile(expr, linktype, snaplen) -> Buffer of struct bpf_insn (8 bytes each: code u16,
// jt u8, jf u8, k u32, host order) | string (libpcap's message for a bad expression).
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

#ifdef BPFKIT_HAVE_PCAP
#include <pcap/pcap.h>
#endif

#include "errors.h"
#include "registry.h"

namespace bpfkit {

namespace {

Napi::Value PcapCompile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber())
    ThrowInvalid(env, "pcap", "expected (expression, linktype, snaplen)");
#ifdef BPFKIT_HAVE_PCAP
  std::string expr = info[0].As<Napi::String>().Utf8Value();
  int linktype = info[1].As<Napi::Number>().Int32Value();
  int snaplen = info[2].As<Napi::Number>().Int32Value();
  pcap_t* p = pcap_open_dead(linktype, snaplen);
  if (!p)
    ThrowErrno(env, ENOMEM, "pcap_open_dead",
               "libpcap cannot open a dead handle for link type " + std::to_string(linktype));
  struct bpf_program prog;
  if (pcap_compile(p, &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string msg = pcap_geterr(p);
    pcap_close(p);
    return Napi::String::New(env, msg);
  }
  static_assert(sizeof(struct bpf_insn) == 8, "struct bpf_insn is 8 bytes");
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(prog.bf_insns),
                                                          static_cast<size_t>(prog.bf_len) * 8);
  pcap_freecode(&prog);
  pcap_close(p);
  return out;
#else
  ThrowErrno(env, EOPNOTSUPP, "pcap_compile",
             "pcap-filter expressions need libpcap: this addon was built without it (install libpcap-dev and rebuild)",
             "ERR_UNSUPPORTED");
#endif
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("pcapCompile", Napi::Function::New(env, PcapCompile));
#ifdef BPFKIT_HAVE_PCAP
  exports.Set("pcapVersion", Napi::String::New(env, pcap_lib_version()));
#endif
}
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
