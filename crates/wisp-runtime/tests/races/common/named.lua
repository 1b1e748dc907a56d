-- The process `with_name` callers share: counts the "hello"s it gets, then reports the count and
-- the callers' numbers to `report` and ends.
local function main(report: string, callers: number)
	local seen = {}
	for _ = 1, callers do
		local msg = process.inbox():receive()
		assert(msg:topic() == "hello", "unexpected topic " .. msg:topic())
		seen[#seen + 1] = msg:payload():data()
	end
	process.send(report, "served", process.pid(), #seen)
	return #seen
end
return { main = main }
