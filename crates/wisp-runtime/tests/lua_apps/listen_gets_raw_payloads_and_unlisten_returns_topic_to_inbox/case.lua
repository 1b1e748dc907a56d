-- expect: ok
local function main()
	local me = process.pid()
	local data = process.listen("data")
	assert(process.listen("data") == data, "listen must return the same channel")
	local inbox = process.inbox()
	assert(process.inbox() == inbox, "inbox must return the same channel")

	local talker = process.spawn("app:talker", "app:processes", me)
	-- The talker sends "data" {x = 1}, then "other" "o".
	local v = data:receive()
	assert(type(v) == "table" and v.x == 1, "listen must give the raw payload")
	local m = inbox:receive()
	assert(m:topic() == "other" and m:payload():data() == "o" and m:from() == talker)

	-- Message objects with {message = true}.
	local rich = process.listen("rich", { message = true })
	process.send(me, "rich", 5)
	local rm = rich:receive()
	assert(rm:topic() == "rich" and rm:from() == me and rm:payload():data() == 5)

	-- After unlisten the topic goes to the inbox.
	assert(process.unlisten(data) == true)
	process.send(me, "data", 7)
	m = inbox:receive()
	assert(m:topic() == "data" and m:payload():data() == 7, "unlistened topic did not reach the inbox")

	-- Several payloads, and none.
	process.send(me, "multi", 1, "two")
	m = inbox:receive()
	local ps = m:payload()
	assert(#ps == 2 and ps[1]:data() == 1 and ps[2]:data() == "two", "several payloads")
	process.send(me, "none")
	m = inbox:receive()
	assert(m:topic() == "none" and m:payload() == nil, "no payload")
	return "ok"
end
return { main = main }
