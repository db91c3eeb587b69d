// Routes (ip route) through libnl: requests for nlBatch, and the dump
// nlRoutesJson(family, table, protocol, netns) -> Promise<JSON text>. Specs arrive validated
// and normalised by lib/route/route.ts; this file only moves fields between JS and libnl.
#if defined(BPFKIT_HAVE_LIBNL)
#include <linux/rtnetlink.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "netlink.h"
#include "registry.h"
#include "util.h"

namespace bpfkit {
namespace nl {

namespace {

struct Hop {
  std::string via;  // gateway, "" for none
  std::string dev;  // interface name ("" when given by index or absent)
  int ifindex = 0;
  int weight = 1;      // 1..256 (the kernel stores weight-1)
  uint32_t flags = 0;  // RTNH_F_* (onlink)
};

struct RouteFields {
  int family = 4;
  uint32_t table = RT_TABLE_MAIN;
  std::string dst;
  int dstLen = 0;
  int tos = 0;
  uint32_t metric = 0;
  bool hasMetric = false;
  int type = RTN_UNICAST;
  int scope = RT_SCOPE_UNIVERSE;
  int protocol = RTPROT_STATIC;
  uint32_t flags = 0;
  std::string prefsrc;
  std::vector<Hop> hops;
};

class RouteOp : public Op {
 public:
  RouteOp(RouteFields r, std::string cmd) : r_(std::move(r)), cmd_(std::move(cmd)) {}

  bool Prepare(Socket& sock, Failure* f) override {
    for (Hop& h : r_.hops) {
      if (h.dev.empty()) continue;
      h.ifindex = sock.IfIndex(h.dev, f);
      if (!h.ifindex) return false;
    }
    return true;
  }

  nl_msg* Build(Failure* f) override {
    std::unique_ptr<rtnl_route, void (*)(rtnl_route*)> route(rtnl_route_alloc(), rtnl_route_put);
    if (!route) {
      f->Set(ENOMEM, "rtnl_route_alloc", "out of memory");
      return nullptr;
    }
    rtnl_route* r = route.get();
    const int af = r_.family == 6 ? AF_INET6 : AF_INET;
    rtnl_route_set_family(r, static_cast<uint8_t>(af));
    rtnl_route_set_table(r, r_.table);
    nl_addr* dst = AddrFromText(af, r_.dst, r_.dstLen);
    if (!dst) {
      f->Set(EINVAL, "", "dst: bad address " + r_.dst, "ERR_INVALID_ARGUMENT");
      return nullptr;
    }
    int rc = rtnl_route_set_dst(r, dst);
    nl_addr_put(dst);
    if (rc < 0) {
      SetNlError(f, rc, "dst");
      return nullptr;
    }
    rtnl_route_set_tos(r, static_cast<uint8_t>(r_.tos));
    if (r_.hasMetric) rtnl_route_set_priority(r, r_.metric);
    rtnl_route_set_type(r, static_cast<uint8_t>(r_.type));
    // explicit scope, no guessing by libnl; a delete matches any scope (RT_SCOPE_NOWHERE)
    rtnl_route_set_scope(r, static_cast<uint8_t>(cmd_ == "delete" ? RT_SCOPE_NOWHERE : r_.scope));
    rtnl_route_set_protocol(r, static_cast<uint8_t>(r_.protocol));
    if (!r_.prefsrc.empty() && cmd_ != "delete") {
      nl_addr* a = AddrFromText(af, r_.prefsrc, r_.family == 6 ? 128 : 32);
      if (!a) {
        f->Set(EINVAL, "", "src: bad address " + r_.prefsrc, "ERR_INVALID_ARGUMENT");
        return nullptr;
      }
      rc = rtnl_route_set_pref_src(r, a);
      nl_addr_put(a);
      if (rc < 0) {
        SetNlError(f, rc, "src");
        return nullptr;
      }
    }
    // A delete names the route by its identity (family, table, dst, tos, metric), type
    // and protocol; next hops are not compared.
    for (const Hop& h : r_.hops) {
      if (cmd_ == "delete") break;
      rtnl_nexthop* nh = rtnl_route_nh_alloc();
      if (!nh) {
        f->Set(ENOMEM, "rtnl_route_nh_alloc", "out of memory");
        return nullptr;
      }
      if (h.ifindex) rtnl_route_nh_set_ifindex(nh, h.ifindex);
      if (!h.via.empty()) {
        nl_addr* gw = AddrFromText(af, h.via, r_.family == 6 ? 128 : 32);
        if (!gw) {
          rtnl_route_nh_free(nh);
          f->Set(EINVAL, "", "via: bad address " + h.via, "ERR_INVALID_ARGUMENT");
          return nullptr;
        }
        rtnl_route_nh_set_gateway(nh, gw);  // takes its own reference
        nl_addr_put(gw);
      }
      // libnl stores the raw rtnh_hops, which is weight - 1
      if (r_.hops.size() > 1) rtnl_route_nh_set_weight(nh, static_cast<uint8_t>(h.weight - 1));
      if (h.flags) rtnl_route_nh_set_flags(nh, h.flags);
      rtnl_route_add_nexthop(r, nh);  // the route owns it now
    }
    nl_msg* msg = nullptr;
    if (cmd_ == "delete") {
      rc = rtnl_route_build_del_request(r, 0, &msg);
    } else {
      // add: exclusive create; replace: create or overwrite the route with this key
      rc = rtnl_route_build_add_request(r, cmd_ == "add" ? NLM_F_EXCL : NLM_F_REPLACE, &msg);
    }
    if (rc < 0) {
      SetNlError(f, rc, "cannot build the route request");
      return nullptr;
    }
    return msg;
  }

 private:
  RouteFields r_;
  std::string cmd_;
};

// ---- dump ---------------------------------------------------------------------------

std::string Text(int af, nl_addr* a) { return a ? AddrText(af, nl_addr_get_binary_addr(a)) : ""; }

bool FromKernel(rtnl_route* r, RouteFields* o) {
  const int af = rtnl_route_get_family(r);
  o->family = af == AF_INET6 ? 6 : 4;
  o->table = rtnl_route_get_table(r);
  nl_addr* dst = rtnl_route_get_dst(r);
  if (dst && nl_addr_get_len(dst) > 0) {
    o->dst = Text(af, dst);
    o->dstLen = static_cast<int>(nl_addr_get_prefixlen(dst));
  } else {
    o->dst = af == AF_INET6 ? "::" : "0.0.0.0";
    o->dstLen = 0;
  }
  o->tos = rtnl_route_get_tos(r);
  o->metric = rtnl_route_get_priority(r);
  o->hasMetric = true;
  o->type = rtnl_route_get_type(r);
  o->scope = rtnl_route_get_scope(r);
  o->protocol = rtnl_route_get_protocol(r);
  o->flags = rtnl_route_get_flags(r);
  o->prefsrc = Text(af, rtnl_route_get_pref_src(r));
  int n = rtnl_route_get_nnexthops(r);
  for (int i = 0; i < n; i++) {
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, i);
    Hop h;
    h.ifindex = rtnl_route_nh_get_ifindex(nh);
    nl_addr* gw = rtnl_route_nh_get_gateway(nh);
    if (!gw) gw = rtnl_route_nh_get_via(nh);
    if (gw) h.via = AddrText(nl_addr_get_family(gw), nl_addr_get_binary_addr(gw));
    h.weight = rtnl_route_nh_get_weight(nh) + 1;
    h.flags = static_cast<uint32_t>(rtnl_route_nh_get_flags(nh));
    o->hops.push_back(std::move(h));
  }
  return true;
}

void RouteJson(Json& j, const RouteFields& r, const std::unordered_map<int, std::string>& names) {
  j.BeginObj();
  j.Key("family").Num(r.family).Key("table").Num(r.table).Key("dst").Str(r.dst).Key("dstLen").Num(r.dstLen);
  j.Key("tos").Num(r.tos).Key("metric").Num(r.metric).Key("type").Num(r.type).Key("scope").Num(r.scope);
  j.Key("protocol").Num(r.protocol).Key("flags").Num(r.flags);
  if (!r.prefsrc.empty()) j.Key("prefsrc").Str(r.prefsrc);
  j.Key("nexthops").BeginArr();
  for (const Hop& h : r.hops) {
    j.BeginObj();
    if (!h.via.empty()) j.Key("via").Str(h.via);
    if (h.ifindex) {
      j.Key("ifindex").Num(h.ifindex);
      auto it = names.find(h.ifindex);
      if (it != names.end()) j.Key("dev").Str(it->second);
    }
    j.Key("weight").Num(h.weight).Key("flags").Num(h.flags);
    j.EndObj();
  }
  j.EndArr();
  j.EndObj();
}

// nlRoutesJson(family: 4|6, table: 0 = all, protocol: -1 = all, netns) -> Promise<string>:
// JSON array of the routes.
// Cached/cloned routes (exceptions) are left out.
Napi::Value NlRoutes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 4;
  uint32_t table = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  int protocol = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  std::string netns = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "";
  struct Baton {
    std::vector<RouteFields> routes;
    std::unordered_map<int, std::string> names;
  };
  auto b = std::make_shared<Baton>();
  return RunAsync(
      env, "bpfkit:nlRoutes",
      [b, family, table, protocol, netns](Failure& f) {
        Socket sock;
        if (!sock.Open(netns, &f)) return;
        nl_msg* req = nlmsg_alloc_simple(RTM_GETROUTE, NLM_F_DUMP);
        if (!req) {
          f.Set(ENOMEM, "nlmsg_alloc", "out of memory");
          return;
        }
        rtmsg rtm;
        memset(&rtm, 0, sizeof rtm);
        rtm.rtm_family = family == 6 ? AF_INET6 : AF_INET;
        // With NETLINK_GET_STRICT_CHK the kernel filters by table and protocol itself;
        // the checks below keep the result right on kernels that ignore the filter.
        if (protocol >= 0) rtm.rtm_protocol = static_cast<uint8_t>(protocol);
        nlmsg_append(req, &rtm, sizeof rtm, NLMSG_ALIGNTO);
        if (table) nla_put_u32(req, RTA_TABLE, table);
        sock.Dump(
            req, "RTM_GETROUTE",
            [&](nlmsghdr* m, Failure* ff) {
              if (m->nlmsg_type != RTM_NEWROUTE || m->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return true;
              const auto* hdr = static_cast<const rtmsg*>(NLMSG_DATA(m));
              if (hdr->rtm_flags & RTM_F_CLONED) return true;
              if (protocol >= 0 && hdr->rtm_protocol != protocol) return true;
              rtnl_route* r = nullptr;
              int rc = rtnl_route_parse(m, &r);
              if (rc < 0) {
                SetNlError(ff, rc, "cannot parse a route from the kernel");
                ff->syscall = "rtnl_route_parse";
                return false;
              }
              if (!table || rtnl_route_get_table(r) == table) {
                RouteFields o;
                FromKernel(r, &o);
                b->routes.push_back(std::move(o));
              }
              rtnl_route_put(r);
              return true;
            },
            [&] { b->routes.clear(); }, &f);
        nlmsg_free(req);
        if (f.failed && f.err == ENOENT && table) {
          f = Failure();  // the kernel creates tables on first use: no table, no routes
          b->routes.clear();
        }
        if (!f.failed) sock.LinkNames(&b->names, &f);
      },
      [b](Napi::Env env) -> Napi::Value {
        Json j;
        j.str().reserve(b->routes.size() * 200);
        j.BeginArr();
        for (const RouteFields& r : b->routes) RouteJson(j, r, b->names);
        j.EndArr();
        return Napi::String::New(env, j.str());
      });
}

void Init(Napi::Env env, Napi::Object exports) { exports.Set("nlRoutesJson", Napi::Function::New(env, NlRoutes)); }

}  // namespace

std::unique_ptr<Op> ParseRouteOp(Napi::Env env, const Keys& k, const Napi::Object& spec, const std::string& cmd,
                                 const std::string& field) {
  Reader o(env, spec, field);
  RouteFields r;
  r.family = static_cast<int>(o.NeedU32(k.family));
  if (r.family != 4 && r.family != 6) o.Bad(k.family, "expected 4 or 6");
  r.table = o.NeedU32(k.table);
  r.dst = o.NeedStr(k.dst);
  r.dstLen = static_cast<int>(o.NeedU32(k.dstLen));
  uint32_t u = 0;
  if (o.U32(k.tos, &u)) r.tos = static_cast<int>(u);
  r.hasMetric = o.U32(k.metric, &r.metric);
  r.type = static_cast<int>(o.NeedU32(k.type));
  r.protocol = static_cast<int>(o.NeedU32(k.protocol));
  if (cmd == "delete") return std::make_unique<RouteOp>(std::move(r), cmd);  // identity, type, protocol
  r.scope = static_cast<int>(o.NeedU32(k.scope));
  o.Str(k.prefsrc, &r.prefsrc);
  Napi::Value hv = o.Get(k.nexthops);
  if (hv.IsArray()) {
    Napi::Array ha = hv.As<Napi::Array>();
    for (uint32_t i = 0; i < ha.Length(); i++) {
      std::string hf = field + ".nexthops[" + std::to_string(i) + "]";
      Napi::Value v = ha.Get(i);
      if (!v.IsObject()) ThrowInvalid(env, hf, "expected an object");
      Reader ho(env, v.As<Napi::Object>(), hf);
      Hop h;
      ho.Str(k.via, &h.via);
      Napi::Value dev = ho.Get(k.dev);
      if (dev.IsString())
        h.dev = dev.As<Napi::String>().Utf8Value();
      else if (dev.IsNumber())
        h.ifindex = dev.As<Napi::Number>().Int32Value();
      if (ho.U32(k.weight, &u)) h.weight = static_cast<int>(u);
      if (h.weight < 1 || h.weight > 256) ho.Bad(k.weight, "expected 1 to 256");
      ho.U32(k.flags, &h.flags);
      r.hops.push_back(std::move(h));
    }
  } else if (!hv.IsUndefined()) {
    o.Bad(k.nexthops, "expected an array");
  }
  return std::make_unique<RouteOp>(std::move(r), cmd);
}

BPFKIT_REGISTER(Init);

}  // namespace nl
}  // namespace bpfkit
#endif  // BPFKIT_HAVE_LIBNL
