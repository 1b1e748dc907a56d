-- expect: ok
local ctx = require("ctx")
local uuid = require("uuid")
local function main()
	local inbox = process.inbox()
	local events = process.events()

	-- with_context: the child reads it with ctx; its own spawns inherit it unless overridden.
	local base = process.with_context({ tenant = "t1", level = 1 })
	local child = base:with_context({ level = 2 }):spawn_monitored("app:reads_ctx", "app:processes", process.pid())
	local msg = inbox:receive()
	assert(msg:topic() == "ctx", msg:topic())
	local got = msg:payload():data()
	assert(got.tenant == "t1" and got.level == 2 and got.inherited_tenant == "t1", "context seen by child and grandchild")
	assert(events:receive().from == child)

	-- with_name + with_message: spawns once, then finds the live process and delivers to it.
	local named = process.with_name("the-collector"):with_message("hello", 1)
	local a = named:spawn("app:collector", "app:processes", process.pid())
	local b = named:with_message("hello", 2):spawn("app:collector", "app:processes", process.pid())
	assert(a == b, "with_name reuses the live process: " .. tostring(a) .. " " .. tostring(b))
	assert(process.registry.lookup("the-collector") == a)
	process.send(a, "report")
	local report = inbox:receive():payload():data()
	assert(report == "hello:1,hello:1,hello:2", tostring(report))

	-- spawners are immutable
	local s1 = process.with_context({ x = 1 })
	local s2 = s1:with_context({ x = 2 })
	assert(s1 ~= s2)

	local ok_ctx, no = ctx.get("missing")
	assert(ok_ctx == nil and type(no) == "string")
	local id4, id7 = uuid.v4(), uuid.v7()
	assert(#id4 == 36 and #id7 == 36 and id4 ~= id7)
	return "ok"
end
return { main = main }
