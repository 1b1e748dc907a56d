local function main(n: number)
	return n * 2
end
return { main = main }
