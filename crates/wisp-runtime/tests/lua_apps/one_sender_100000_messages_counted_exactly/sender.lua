local function main(to: string, n: number)
	for i = 1, n do
		assert(process.send(to, "n", i))
	end
	process.send(to, "end")
end
return { main = main }
