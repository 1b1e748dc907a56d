-- expect: ok
local function main()
	local me = process.pid()
	local inbox = process.inbox()
	process.send(me, "multi", { a = 1 }, 2)
	process.send(me, "one", { list = { 1, 2 } })
	process.send(me, "none")

	local multi = inbox:receive()
	assert(typeof(multi) == "message", "typeof " .. typeof(multi))
	assert(multi:topic() == "multi" and multi:from() == me)
	local parts = multi:payload()
	assert(#parts == 2 and parts[1]:data().a == 1 and parts[2]:data() == 2, "payload objects")
	local all = multi:data()
	assert(all[1].a == 1 and all[2] == 2, "data of several payloads")
	assert(getmetatable(parts[1]) == false, "the payload metatable is visible")
	-- A payload of several is sent on as its value too.
	process.send(me, "part", parts[2])

	-- Each data() is a fresh copy: changing one does not change the next.
	local one = inbox:receive()
	local first = one:payload():data()
	first.list[1] = 99
	assert(one:data().list[1] == 1, "data() handed out a shared table")

	local none = inbox:receive()
	assert(none:payload() == nil and none:data() == nil, "a message without payload")

	-- A Payload can be sent on as it is: the receiver gets its data.
	process.send(me, "forward", one:payload())
	assert(inbox:receive():payload():data() == 2, "a forwarded part of several payloads")
	local forwarded = inbox:receive():payload():data()
	assert(forwarded.list[1] == 1 and forwarded.list[2] == 2, "a forwarded payload")

	-- The methods are shared by every process of a shard: nobody may reach or change them.
	assert(getmetatable(one) == false, "the metatable is visible")
	local ok, err = pcall(one.topic, {})
	assert(not ok and string.find(err, "non%-message"), tostring(err))
	assert(not pcall(function() one.topic = nil end), "a message took a field")
	return "ok"
end
return { main = main }
