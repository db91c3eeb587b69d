// Routing policy rules (ip rule) through libnl: requests for nlBatch, and the dump
// nlRulesJson(family, netns) -> Promise<JSON text>. Specs arrive validated and normalised by
// lib/route/rule.ts; this file only moves fields between JS and libnl.
#if defined(BPFKIT_HAVE_LIBNL)
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/route/rule.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "netlink.h"
#include "registry.h"
#include "util.h"

namespace bpfkit {
namespace nl {

namespace {

int Af(int family) { return family == 6 ? AF_INET6 : AF_INET; }

struct RuleFields {
  int family = 4;
  uint32_t priority = 0;
  bool hasTable = false;
  uint32_t table = 0;
  int action = FR_ACT_TO_TBL;
  bool hasMark = false, hasMask = false;
  uint32_t mark = 0, mask = 0;
  std::string iif, oif, src, dst;
  int srcLen = 0, dstLen = 0;
  int tos = -1, ipProto = -1, protocol = -1;
  int sportLo = 0, sportHi = 0, dportLo = 0, dportHi = 0;
  uint32_t flags = 0;  // FIB_RULE_* (invert; detached in dumps)
};

void ReadRange(const Reader& o, const Napi::String& key, int* lo, int* hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return;
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 2) o.Bad(key, "expected [from, to]");
  Napi::Array a = v.As<Napi::Array>();
  Napi::Value l = a.Get(0u), h = a.Get(1u);
  if (!l.IsNumber() || !h.IsNumber()) o.Bad(key, "expected [from, to]");
  *lo = l.As<Napi::Number>().Int32Value();
  *hi = h.As<Napi::Number>().Int32Value();
}

class RuleOp : public Op {
 public:
  RuleOp(RuleFields r, bool add) : r_(std::move(r)), add_(add) {}

  bool Prepare(Socket& sock, Failure* f) override {
    // The kernel accepts rules naming interfaces that do not exist (they stay
    // "detached" until one appears); bpfkit refuses on add so a typo is an error.
    // Deletes must still work after the interface is gone.
    if (!add_) return true;
    if (!r_.iif.empty() && !sock.IfIndex(r_.iif, f)) return false;
    if (!r_.oif.empty() && !sock.IfIndex(r_.oif, f)) return false;
    return true;
  }

  nl_msg* Build(Failure* f) override {
    std::unique_ptr<rtnl_rule, void (*)(rtnl_rule*)> rule(rtnl_rule_alloc(), rtnl_rule_put);
    if (!rule) {
      f->Set(ENOMEM, "rtnl_rule_alloc", "out of memory");
      return nullptr;
    }
    rtnl_rule* r = rule.get();
    const int af = Af(r_.family);
    rtnl_rule_set_family(r, af);
    rtnl_rule_set_prio(r, r_.priority);
    if (r_.hasTable) rtnl_rule_set_table(r, r_.table);
    rtnl_rule_set_action(r, static_cast<uint8_t>(r_.action));
    if (r_.hasMark) rtnl_rule_set_mark(r, r_.mark);
    if (r_.hasMask) rtnl_rule_set_mask(r, r_.mask);
    if (!r_.iif.empty()) rtnl_rule_set_iif(r, r_.iif.c_str());
    if (!r_.oif.empty()) rtnl_rule_set_oif(r, r_.oif.c_str());
    for (int which = 0; which < 2; which++) {
      const std::string& text = which ? r_.dst : r_.src;
      if (text.empty()) continue;
      nl_addr* a = AddrFromText(af, text, which ? r_.dstLen : r_.srcLen);
      if (!a) {
        f->Set(EINVAL, "", std::string(which ? "dst" : "src") + ": bad address " + text, "ERR_INVALID_ARGUMENT");
        return nullptr;
      }
      int rc = which ? rtnl_rule_set_dst(r, a) : rtnl_rule_set_src(r, a);
      nl_addr_put(a);
      if (rc < 0) {
        SetNlError(f, rc, which ? "dst" : "src");
        return nullptr;
      }
    }
    if (r_.tos >= 0) rtnl_rule_set_dsfield(r, static_cast<uint8_t>(r_.tos));
    if (r_.ipProto >= 0) rtnl_rule_set_ipproto(r, static_cast<uint8_t>(r_.ipProto));
    if (r_.sportLo) rtnl_rule_set_sport_range(r, static_cast<uint16_t>(r_.sportLo), static_cast<uint16_t>(r_.sportHi));
    if (r_.dportLo) rtnl_rule_set_dport_range(r, static_cast<uint16_t>(r_.dportLo), static_cast<uint16_t>(r_.dportHi));
    if (r_.protocol >= 0) rtnl_rule_set_protocol(r, static_cast<uint8_t>(r_.protocol));
    nl_msg* msg = nullptr;
    // NLM_F_EXCL: without it the kernel happily adds an identical second rule.
    int rc = add_ ? rtnl_rule_build_add_request(r, NLM_F_EXCL, &msg) : rtnl_rule_build_delete_request(r, 0, &msg);
    if (rc < 0) {
      SetNlError(f, rc, "cannot build the rule request");
      return nullptr;
    }
    // libnl 3.7 has no setter for the header flags; "not" (FIB_RULE_INVERT) lives there.
    if (r_.flags & FIB_RULE_INVERT) static_cast<fib_rule_hdr*>(nlmsg_data(nlmsg_hdr(msg)))->flags |= FIB_RULE_INVERT;
    return msg;
  }

 private:
  RuleFields r_;
  bool add_;
};

// ---- dump ---------------------------------------------------------------------------

struct DumpCtx {
  std::vector<RuleFields>* out;
  uint32_t flags;
};

void OnRule(nl_object* obj, void* arg) {
  auto* ctx = static_cast<DumpCtx*>(arg);
  auto* r = reinterpret_cast<rtnl_rule*>(obj);
  const int fam = rtnl_rule_get_family(r);
  // An AF_UNSPEC dump also returns the multicast routing families (RTNL_FAMILY_IPMR...).
  if (fam != AF_INET && fam != AF_INET6) return;
  RuleFields o;
  o.family = fam == AF_INET6 ? 6 : 4;
  o.priority = rtnl_rule_get_prio(r);
  o.table = rtnl_rule_get_table(r);
  o.hasTable = o.table != 0;
  o.action = rtnl_rule_get_action(r);
  o.mark = rtnl_rule_get_mark(r);
  o.mask = rtnl_rule_get_mask(r);
  o.hasMark = o.mark != 0 || o.mask != 0;  // the kernel reports a mark selector this way
  o.hasMask = o.hasMark;
  if (const char* s = rtnl_rule_get_iif(r)) o.iif = s;
  if (const char* s = rtnl_rule_get_oif(r)) o.oif = s;
  const int af = o.family == 6 ? AF_INET6 : AF_INET;
  if (nl_addr* a = rtnl_rule_get_src(r)) {
    o.src = AddrText(af, nl_addr_get_binary_addr(a));
    o.srcLen = static_cast<int>(nl_addr_get_prefixlen(a));
  }
  if (nl_addr* a = rtnl_rule_get_dst(r)) {
    o.dst = AddrText(af, nl_addr_get_binary_addr(a));
    o.dstLen = static_cast<int>(nl_addr_get_prefixlen(a));
  }
  o.tos = rtnl_rule_get_dsfield(r);
  uint8_t u8v;
  if (rtnl_rule_get_ipproto(r, &u8v) == 0) o.ipProto = u8v;
  if (rtnl_rule_get_protocol(r, &u8v) == 0) o.protocol = u8v;
  uint16_t lo, hi;
  if (rtnl_rule_get_sport(r, &lo, &hi) == 0) o.sportLo = lo, o.sportHi = hi;
  if (rtnl_rule_get_dport(r, &lo, &hi) == 0) o.dportLo = lo, o.dportHi = hi;
  o.flags = ctx->flags;
  ctx->out->push_back(std::move(o));
}

void RuleJson(Json& j, const RuleFields& r) {
  j.BeginObj();
  j.Key("family").Num(r.family).Key("priority").Num(r.priority).Key("table").Num(r.table);
  j.Key("action").Num(r.action).Key("flags").Num(r.flags);
  if (r.hasMark) j.Key("fwmark").Num(r.mark).Key("fwmask").Num(r.mask);
  if (!r.iif.empty()) j.Key("iif").Str(r.iif);
  if (!r.oif.empty()) j.Key("oif").Str(r.oif);
  if (!r.src.empty()) j.Key("src").Str(r.src).Key("srcLen").Num(r.srcLen);
  if (!r.dst.empty()) j.Key("dst").Str(r.dst).Key("dstLen").Num(r.dstLen);
  if (r.tos > 0) j.Key("tos").Num(r.tos);
  if (r.ipProto >= 0) j.Key("ipProto").Num(r.ipProto);
  if (r.sportLo) j.Key("sport").BeginArr().Num(r.sportLo).Num(r.sportHi).EndArr();
  if (r.dportLo) j.Key("dport").BeginArr().Num(r.dportLo).Num(r.dportHi).EndArr();
  j.Key("protocol").Num(r.protocol >= 0 ? r.protocol : 0);
  j.EndObj();
}

// nlRulesJson(family: 0|4|6, netns) -> Promise<string>: JSON array of the rules in
// kernel (evaluation) order.
Napi::Value NlRules(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  std::string netns = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  auto rules = std::make_shared<std::vector<RuleFields>>();
  return RunAsync(
      env, "bpfkit:nlRules",
      [rules, family, netns](Failure& f) {
        Socket sock;
        if (!sock.Open(netns, &f)) return;
        nl_msg* req = nlmsg_alloc_simple(RTM_GETRULE, NLM_F_DUMP);
        if (!req) {
          f.Set(ENOMEM, "nlmsg_alloc", "out of memory");
          return;
        }
        fib_rule_hdr frh;
        memset(&frh, 0, sizeof frh);
        frh.family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
        nlmsg_append(req, &frh, sizeof frh, NLMSG_ALIGNTO);
        sock.Dump(
            req, "RTM_GETRULE",
            [&](nlmsghdr* m, Failure* ff) {
              if (m->nlmsg_type != RTM_NEWRULE || m->nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr))) return true;
              nl_msg* copy = nlmsg_convert(m);
              if (!copy) {
                ff->Set(ENOMEM, "nlmsg_convert", "out of memory");
                return false;
              }
              nlmsg_set_proto(copy, NETLINK_ROUTE);
              DumpCtx ctx{rules.get(), static_cast<fib_rule_hdr*>(NLMSG_DATA(m))->flags};
              int rc = nl_msg_parse(copy, OnRule, &ctx);
              nlmsg_free(copy);
              if (rc < 0) {
                SetNlError(ff, rc, "cannot parse a rule from the kernel");
                ff->syscall = "nl_msg_parse";
                return false;
              }
              return true;
            },
            [&] { rules->clear(); }, &f);
        nlmsg_free(req);
      },
      [rules](Napi::Env env) -> Napi::Value {
        Json j;
        j.BeginArr();
        for (const RuleFields& r : *rules) RuleJson(j, r);
        j.EndArr();
        return Napi::String::New(env, j.str());
      });
}

void Init(Napi::Env env, Napi::Object exports) { exports.Set("nlRulesJson", Napi::Function::New(env, NlRules)); }

}  // namespace

std::unique_ptr<Op> ParseRuleOp(Napi::Env env, const Keys& k, const Napi::Object& spec, const std::string& cmd,
                                const std::string& field) {
  Reader o(env, spec, field);
  RuleFields r;
  r.family = static_cast<int>(o.NeedU32(k.family));
  if (r.family != 4 && r.family != 6) o.Bad(k.family, "expected 4 or 6");
  r.priority = o.NeedU32(k.priority);
  r.hasTable = o.U32(k.table, &r.table);
  r.action = static_cast<int>(o.NeedU32(k.action));
  r.hasMark = o.U32(k.fwmark, &r.mark);
  r.hasMask = o.U32(k.fwmask, &r.mask);
  o.Str(k.iif, &r.iif);
  o.Str(k.oif, &r.oif);
  if (r.iif.size() > 15) o.Bad(k.iif, "interface names are at most 15 bytes");
  if (r.oif.size() > 15) o.Bad(k.oif, "interface names are at most 15 bytes");
  uint32_t u = 0;
  if (o.Str(k.src, &r.src)) r.srcLen = static_cast<int>(o.NeedU32(k.srcLen));
  if (o.Str(k.dst, &r.dst)) r.dstLen = static_cast<int>(o.NeedU32(k.dstLen));
  if (o.U32(k.tos, &u)) r.tos = static_cast<int>(u);
  if (o.U32(k.ipProto, &u)) r.ipProto = static_cast<int>(u);
  if (o.U32(k.protocol, &u)) r.protocol = static_cast<int>(u);
  ReadRange(o, k.sport, &r.sportLo, &r.sportHi);
  ReadRange(o, k.dport, &r.dportLo, &r.dportHi);
  if (o.U32(k.flags, &u)) r.flags = u & FIB_RULE_INVERT;
  return std::make_unique<RuleOp>(std::move(r), cmd == "add");
}

BPFKIT_REGISTER(Init);

}  // namespace nl
}  // namespace bpfkit
#endif  // BPFKIT_HAVE_LIBNL
