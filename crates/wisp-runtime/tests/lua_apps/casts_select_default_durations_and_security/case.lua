-- expect: ok
local time = require("time")
local security = require("security")
local function main()
	-- type casts
	assert(string("x") == "x" and string(5) == "5")
	assert(integer("7") == 7 and number("2.5") == 2.5 and boolean(true) == true)
	assert(not pcall(integer, 2.5) and not pcall(boolean, "yes") and not pcall(string, {}))
	-- select default carries ok = true
	local r = channel.select({ channel.new(0):case_receive(), default = true })
	assert(r.default == true and r.ok == true)
	-- duration constants in nanoseconds
	assert(time.MILLISECOND == 1e6 and time.SECOND == 1e9)
	time.sleep(2 * time.MILLISECOND)
	-- actors and scopes pass to children and are inherited by theirs
	assert(security.actor() == nil)
	local actor = security.new_actor("user-1", { role = "admin" })
	local scope = security.new_scope({ { id = "p", actions = { "data.*" }, resources = { "*" }, effect = "allow" } })
	local got = process.with_actor(actor):with_scope(scope):spawn_monitored("app:who", "app:processes", process.pid())
	local seen = process.inbox():receive():payload():data()
	assert(seen.id == "user-1" and seen.role == "admin" and seen.grandchild == "user-1", "actor seen")
	assert(seen.can_read == true and seen.can_write == false, "scope judged")
	assert(process.events():receive().from == got)
	return "ok"
end
return { main = main }
