-- expect: ok
local function main()
	local me = process.pid()
	local child = process.spawn("app:mutator", "app:processes", me)
	local t = { a = 1, list = { 1, 2, 3 }, nested = { x = { y = "z" } }, [10] = true, s = "bytes\0here" }
	assert(process.send(child, "t", t) == true)
	-- Mutating after the send does not change what was sent.
	t.a = 999
	local msg = process.inbox():receive()
	local theirs = msg:payload():data()
	assert(theirs.seen_a == 1, "the receiver saw a = " .. tostring(theirs.seen_a))
	assert(theirs.seen_s == "bytes\0here", "string bytes changed")
	assert(theirs.seen_10 == true, "numeric key lost")
	-- The receiver's mutations do not reach the sender.
	assert(theirs.list[4] == 4 and theirs.nested.x.y == "changed")
	assert(t.a == 999 and #t.list == 3 and t.nested.x.y == "z", "the sender's table changed")

	-- A table used twice is not a cycle: both places get a copy.
	local shared = { 1 }
	assert(process.send(child, "echo", { p = shared, q = shared }) == true)
	local back = process.inbox():receive():payload():data()
	assert(back.p[1] == 1 and back.q[1] == 1)

	-- Refused at send, with an error.
	local okf, errf = pcall(process.send, child, "f", function() end)
	assert(not okf and errf ~= nil, "sending a function must raise")
	local okn = pcall(process.send, child, "f", { inner = { fn = print } })
	assert(not okn, "sending a nested function must raise")
	local okc = pcall(process.send, child, "f", coroutine.create(function() end))
	assert(not okc, "sending a coroutine must raise")
	local cyc = {}
	cyc.self = cyc
	local okcy, errcy = pcall(process.send, child, "c", cyc)
	assert(not okcy and errcy ~= nil, "sending a cyclic table must raise")
	local deep = { a = { b = {} } }
	deep.a.b.c = deep
	assert(not pcall(process.send, child, "c", deep), "sending an indirect cycle must raise")

	-- The refused sends delivered nothing: the next message is the echo.
	process.send(child, "echo", "after")
	assert(process.inbox():receive():payload():data() == "after")
	process.send(child, "stop")
	return "ok"
end
return { main = main }
